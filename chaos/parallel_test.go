package chaos

import "flag"

// raiseParallel lets the scenarios run side by side. They spend their time
// waiting on their processes — rounds, restarts, a cut link, a 1 MB/s
// proxy, a failpoint's hold — so go test's default (-parallel GOMAXPROCS:
// 2 on the 2-core machines here) would run them two at a time with the
// CPU mostly idle: the package took 95–583 s that way, most of it one
// scenario waiting behind another. A -parallel on the command line wins.
func raiseParallel() {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		_ = flag.Set("test.parallel", "16")
	}
}

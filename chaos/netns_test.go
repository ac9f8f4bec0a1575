package chaos

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// A lab is a bridge in the test's own network namespace and, per node, a
// network namespace joined to the bridge by a veth link. The test process
// sits on the bridge (at .1): it runs the CLI and toxiproxy from there.
// Cutting a node's link (its host end down) drops its packets both ways,
// with no reset: a partition, not a crash.
type lab struct {
	t      *testing.T
	id     string // unique per lab on this machine
	seq    int32  // the lab's number in this process
	bridge string
	prefix string // "10.a.b."
	mu     sync.Mutex
	nodes  map[string]*node
	next   int
}

type node struct {
	name, ns, hostIf, ip string
}

var labSeq atomic.Int32

// ipCmd runs ip(8) with args.
func ipCmd(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

var errNoIP = errors.New("ip(8) is not installed (Debian package iproute2; .ci/run installs it)")

// probeNetns says whether this process may make network namespaces and
// links (root, or CAP_NET_ADMIN and CAP_SYS_ADMIN, and iproute2).
func probeNetns() error {
	if _, err := exec.LookPath("ip"); err != nil {
		return errNoIP
	}
	name := fmt.Sprintf("fch-probe-%d", os.Getpid())
	if err := ipCmd("netns", "add", name); err != nil {
		return fmt.Errorf("cannot create a network namespace (needs root or CAP_SYS_ADMIN): %w", err)
	}
	defer ipCmd("netns", "del", name)
	br := fmt.Sprintf("fcp%d", os.Getpid()%100000)
	if err := ipCmd("link", "add", br, "type", "bridge"); err != nil {
		return fmt.Errorf("cannot create a bridge (needs CAP_NET_ADMIN): %w", err)
	}
	return ipCmd("link", "del", br)
}

// needNetns skips the test where namespaces are impossible. Under CI=true
// a missing ip(8) fails it (.ci/run installs iproute2); a kernel that
// refuses the namespace (a container without CAP_SYS_ADMIN and
// CAP_NET_ADMIN) skips it, saying so: no install step can grant that, and
// it must not sink every other test's run. FEDERA_CHAOS_REQUIRED=1 makes
// that a failure too.
func needNetns(t *testing.T) {
	t.Helper()
	if netnsErr == nil {
		return
	}
	if (os.Getenv("CI") == "true" && errors.Is(netnsErr, errNoIP)) || os.Getenv("FEDERA_CHAOS_REQUIRED") == "1" {
		t.Fatalf("network namespaces are unavailable: %v", netnsErr)
	}
	t.Skipf("network namespaces unavailable, so the fault scenarios do not run here (they need root with CAP_SYS_ADMIN and CAP_NET_ADMIN): %v", netnsErr)
}

// newLab makes the bridge; nodes come with add. Everything is removed at
// the test's end.
func newLab(t *testing.T) *lab {
	t.Helper()
	needNetns(t)
	pid := os.Getpid()
	n := labSeq.Add(1)
	l := &lab{t: t, id: fmt.Sprintf("%d-%d", pid, n), seq: n, nodes: map[string]*node{}, next: 2}
	// Interface names have at most 15 bytes.
	l.bridge = fmt.Sprintf("fcb%d%02d", pid%100000, n%100)
	// A /24 per lab, from the pid and the lab's number, in 10.128-255.x.
	v := (pid*16 + int(n)) % (128 * 256)
	l.prefix = fmt.Sprintf("10.%d.%d.", 128+v/256, v%256)
	must := func(args ...string) {
		t.Helper()
		if err := ipCmd(args...); err != nil {
			t.Fatal(err)
		}
	}
	_ = ipCmd("link", "del", l.bridge) // a leftover of a killed run
	must("link", "add", l.bridge, "type", "bridge")
	t.Cleanup(func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		for _, nd := range l.nodes {
			_ = ipCmd("netns", "del", nd.ns)
		}
		_ = ipCmd("link", "del", l.bridge)
	})
	must("addr", "add", l.prefix+"1/24", "dev", l.bridge)
	must("link", "set", l.bridge, "up")
	return l
}

// hostIP is the test process's address on the bridge.
func (l *lab) hostIP() string { return l.prefix + "1" }

// add makes node name's namespace and link, and returns its address.
func (l *lab) add(name string) *node {
	l.t.Helper()
	l.mu.Lock()
	i := l.next
	l.next++
	// The bridge's name (at most 10 bytes) and the node's number: at most 15.
	nd := &node{name: name, ns: fmt.Sprintf("fch-%s-%d", l.id, i), hostIf: fmt.Sprintf("%s-%d", l.bridge, i), ip: fmt.Sprintf("%s%d", l.prefix, i)}
	l.nodes[name] = nd
	l.mu.Unlock()
	// At most 15 bytes: 3 + 5 + 2 + 1 + 2.
	peer := fmt.Sprintf("fcq%d%02d-%d", os.Getpid()%100000, l.seq%100, i)
	for _, args := range [][]string{
		{"netns", "add", nd.ns},
		{"link", "add", nd.hostIf, "type", "veth", "peer", "name", peer},
		{"link", "set", peer, "netns", nd.ns},
		{"-n", nd.ns, "link", "set", peer, "name", "eth0"},
		{"-n", nd.ns, "addr", "add", nd.ip + "/24", "dev", "eth0"},
		{"-n", nd.ns, "link", "set", "eth0", "up"},
		{"-n", nd.ns, "link", "set", "lo", "up"},
		{"link", "set", nd.hostIf, "master", l.bridge},
		{"link", "set", nd.hostIf, "up"},
	} {
		if err := ipCmd(args...); err != nil {
			l.t.Fatalf("node %s: %v", name, err)
		}
	}
	return nd
}

// cut partitions node name from everyone; restore heals it.
func (l *lab) cut(name string) {
	l.t.Helper()
	if err := ipCmd("link", "set", l.nodes[name].hostIf, "down"); err != nil {
		l.t.Fatal(err)
	}
}

func (l *lab) restore(name string) {
	l.t.Helper()
	if err := ipCmd("link", "set", l.nodes[name].hostIf, "up"); err != nil {
		l.t.Fatal(err)
	}
}

// command runs bin with args inside node's namespace. ip netns exec
// execs in place, so the process is bin itself: a signal reaches it.
func (nd *node) command(bin string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", nd.ns, bin}, args...)...)
}

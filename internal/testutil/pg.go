package testutil

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// PostgresBinDir is where Debian's postgresql-15 package puts initdb,
// pg_ctl and postgres (.ci/run installs it).
const PostgresBinDir = "/usr/lib/postgresql/15/bin"

// Postgres is a throwaway PostgreSQL cluster a test started: its own data
// directory, a unix socket in a private directory and a loopback TCP port,
// stopped and deleted when the test ends.
type Postgres struct {
	// DSN reaches the cluster over its unix socket as the superuser
	// (trust authentication: only this machine's users reach the socket
	// directory, and only the test's user can).
	DSN string
	// Host and Port are the TCP listener on 127.0.0.1, where logins need
	// User and Password (scram-sha-256).
	Host     string
	Port     int
	User     string
	Password string
}

// TCPDSN returns a URL connection string for the TCP listener with the
// given password (the right one is p.Password).
func (p *Postgres) TCPDSN(password string) string {
	return fmt.Sprintf("postgres://%s:%s@%s:%d/postgres?sslmode=disable",
		p.User, password, p.Host, p.Port)
}

// StartPostgres initdb's a cluster in a temporary directory and starts it,
// in about a second (no fsync). PostgreSQL refuses to run as root, so as
// root the server runs as the postgres user the Debian package creates.
//
// Without the server binaries the test fails when the environment variable
// CI is set (.ci/run installs them, so their absence there is a broken
// setup) and is skipped otherwise, saying how to install them.
func StartPostgres(t testing.TB) *Postgres {
	t.Helper()
	bin := postgresBinDir()
	if bin == "" {
		msg := "PostgreSQL server binaries (initdb, pg_ctl) not found in " + PostgresBinDir +
			" or $PATH; install them with `apt-get install postgresql` (Debian; .ci/run does)"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg + "; CI installs them and fails instead of skipping")
	}

	// runAs prefixes a command so it runs as a user PostgreSQL accepts.
	var runAs []string
	var uid, gid = -1, -1
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root and there is no postgres user to run the server as (the postgresql package creates one): %v", err)
		}
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
		runAs = []string{"runuser", "-u", "postgres", "--"}
	}

	dir := t.TempDir()
	// A unix socket path must fit in 107 bytes; t.TempDir's name carries
	// the test's, so the socket gets a short directory of its own.
	sock, err := os.MkdirTemp("", "fpg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sock) })
	if uid >= 0 {
		// t.TempDir's parent is private to root: let the server user pass.
		if err := os.Chmod(filepath.Dir(dir), 0o711); err != nil {
			t.Fatal(err)
		}
		for _, d := range []string{dir, sock} {
			if err := os.Chown(d, uid, gid); err != nil {
				t.Fatal(err)
			}
		}
	}

	p := &Postgres{Host: "127.0.0.1", Port: freePort(t), User: "federa", Password: "s3cret-Pw_" + strconv.Itoa(os.Getpid())}
	pwfile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwfile, []byte(p.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if uid >= 0 {
		if err := os.Chown(pwfile, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	data := filepath.Join(dir, "data")
	run := func(name string, args ...string) {
		t.Helper()
		argv := append(append(runAs[:len(runAs):len(runAs)], filepath.Join(bin, name)), args...)
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "LC_ALL=C")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
		}
	}
	run("initdb", "-D", data, "-U", p.User, "--pwfile", pwfile, "--auth-local=trust", "--auth-host=scram-sha-256",
		"--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions")
	opts := fmt.Sprintf("-k %s -p %d -c listen_addresses=%s -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
		sock, p.Port, p.Host)
	run("pg_ctl", "-D", data, "-l", filepath.Join(dir, "server.log"), "-o", opts, "-w", "-t", "30", "start")
	t.Cleanup(func() {
		argv := append(append(runAs[:len(runAs):len(runAs)], filepath.Join(bin, "pg_ctl")), "-D", data, "-m", "immediate", "-w", "stop")
		if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
			t.Errorf("stop PostgreSQL: %v\n%s", err, out)
		}
	})
	p.DSN = fmt.Sprintf("host=%s port=%d user=%s dbname=postgres sslmode=disable", sock, p.Port, p.User)
	return p
}

// postgresBinDir is the directory holding initdb and pg_ctl, or "".
func postgresBinDir() string {
	if _, err := os.Stat(filepath.Join(PostgresBinDir, "pg_ctl")); err == nil {
		return PostgresBinDir
	}
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if _, err := exec.LookPath("initdb"); err == nil {
			return filepath.Dir(p)
		}
	}
	return ""
}

// freePort returns a TCP port on loopback nobody listens on right now.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

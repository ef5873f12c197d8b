// Command loadgen is the load generator of authproxy's side-by-side benchmark
// (bench/run.sh, `make bench`). It drives several gRPC targets (the fake
// Milvus directly, authproxy in three setups, nginx in two) with the same
// workloads, interleaved round-robin, and writes a markdown table, a JSON
// file of every round and an SVG of the latency distributions.
//
//	loadgen run -target direct=127.0.0.1:39540,pid=123 -target ap-auth=127.0.0.1:39532,pid=456,mem ... -out bench/results
//	loadgen backend -listen 127.0.0.1:39540
//	loadgen l4 -listen 127.0.0.1:39539 -to 127.0.0.1:39540
//	loadgen etcd -dir /tmp/etcd -listen 127.0.0.1:39541 -peer 127.0.0.1:39542
//
// It uses milvuspb's generated client and grpc-go directly (no SDK, no
// reflection). Every call carries the same `authorization` metadata to every
// target, as a Milvus SDK does. Traffic goes to loopback addresses only; every
// loop is bounded in count and time.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/authproxy/authproxy/test/fakemilvus"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	switch os.Args[1] {
	case "run":
		if err := runCmd(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			os.Exit(1)
		}
	case "backend":
		if err := backendCmd(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen backend:", err)
			os.Exit(1)
		}
	case "l4":
		if err := l4Cmd(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen l4:", err)
			os.Exit(1)
		}
	case "etcd":
		if err := etcdCmd(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen etcd:", err)
			os.Exit(1)
		}
	case "report":
		if err := reportCmd(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen report:", err)
			os.Exit(1)
		}
	default:
		usage()
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: loadgen run [flags] | loadgen backend -listen ADDR | loadgen l4 -listen ADDR -to ADDR | loadgen etcd -dir DIR [-listen ADDR -peer ADDR] | loadgen report [-dir DIR]")
	os.Exit(2)
}

// backendCmd runs the fake Milvus library without per-call logging and with
// its call recorder cleared every second: cmd/fakemilvus logs every call (a
// slog line each) and its recorder keeps every call forever, which costs the
// backend CPU and grows without bound over a benchmark's million calls.
func backendCmd(args []string) error {
	fs := flag.NewFlagSet("backend", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:19540", "gRPC listen address (loopback)")
	maxLife := fs.Duration("max-life", 30*time.Minute, "exit after this long in any case")
	_ = fs.Parse(args)
	if err := loopbackOnly(*listen); err != nil {
		return err
	}
	srv := fakemilvus.New(fakemilvus.Options{})
	addr, err := srv.Start(*listen)
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "fake milvus (quiet) serving gRPC on", addr)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *maxLife)
	defer cancel()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			srv.Stop()
			return nil
		case <-t.C:
			srv.Recorder().Reset()
		}
	}
}

// loopbackOnly refuses any address outside 127.0.0.0/8 and ::1.
func loopbackOnly(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%s is not a loopback address: the benchmark only sends traffic to 127.0.0.0/8", addr)
	}
	return nil
}

// targetSpec is one -target flag: name=host:port[,tls][,pid=1+2][,mem].
type targetSpec struct {
	Name string
	Addr string
	TLS  bool
	PIDs []int // processes whose CPU and RSS count as this target's (summed)
	Mem  bool  // run the 1,000-connection memory test on it
	// Token, if set, replaces -token for this target's calls (a user whose
	// grants are checked, beside root on the same proxy).
	Token string
}

type targetFlags []targetSpec

func (t *targetFlags) String() string { return fmt.Sprint(*t) }

func (t *targetFlags) Set(s string) error {
	parts := strings.Split(s, ",")
	name, addr, ok := strings.Cut(parts[0], "=")
	if !ok || name == "" {
		return fmt.Errorf("target %q: want name=host:port[,tls][,pid=N+M][,mem][,token=user:password]", s)
	}
	if err := loopbackOnly(addr); err != nil {
		return err
	}
	spec := targetSpec{Name: name, Addr: addr}
	for _, p := range parts[1:] {
		switch {
		case p == "tls":
			spec.TLS = true
		case p == "mem":
			spec.Mem = true
		case strings.HasPrefix(p, "token="):
			spec.Token = strings.TrimPrefix(p, "token=")
		case strings.HasPrefix(p, "pid="):
			for _, n := range strings.Split(strings.TrimPrefix(p, "pid="), "+") {
				pid, err := strconv.Atoi(n)
				if err != nil {
					return fmt.Errorf("target %q: bad pid %q", s, n)
				}
				spec.PIDs = append(spec.PIDs, pid)
			}
		default:
			return fmt.Errorf("target %q: unknown option %q", s, p)
		}
	}
	*t = append(*t, spec)
	return nil
}

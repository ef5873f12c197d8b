package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// l4Cmd runs the floor of the comparison: a TCP relay that parses nothing.
// Each accepted connection gets its own connection to the backend and two
// io.Copy loops (which splice(2) between the sockets on Linux, so no byte
// enters user space). No HTTP/2 proxy can forward with less work, so what
// it costs on this machine is the least any proxy's goal can ask.
func l4Cmd(args []string) error {
	fs := flag.NewFlagSet("l4", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:39539", "listen address (loopback)")
	to := fs.String("to", "127.0.0.1:39540", "backend address (loopback)")
	maxLife := fs.Duration("max-life", 30*time.Minute, "exit after this long in any case")
	copyBy := fs.String("copy", "splice", "how bytes cross: splice (in the kernel) or buffer (read and write through a 256 KiB buffer, as a user-space relay does)")
	_ = fs.Parse(args)
	if *copyBy != "splice" && *copyBy != "buffer" {
		return fmt.Errorf("-copy %q: want splice or buffer", *copyBy)
	}
	buffered := *copyBy == "buffer"
	for _, a := range []string{*listen, *to} {
		if err := loopbackOnly(a); err != nil {
			return err
		}
	}
	lis, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *maxLife)
	defer cancel()
	go func() {
		<-ctx.Done()
		lis.Close()
	}()
	fmt.Fprintln(os.Stderr, "l4 relay on", lis.Addr(), "to", *to)
	for {
		c, err := lis.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		go l4Relay(c.(*net.TCPConn), *to, buffered)
	}
}

func l4Relay(client *net.TCPConn, to string, buffered bool) {
	defer client.Close()
	b, err := net.DialTimeout("tcp", to, 5*time.Second)
	if err != nil {
		return
	}
	backend := b.(*net.TCPConn)
	defer backend.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		copyHalf(backend, client, buffered)
	}()
	copyHalf(client, backend, buffered)
	<-done
}

// copyHalf copies one direction and passes its end on as a half-close;
// buffered (-copy buffer) reads and writes through a buffer instead of
// splicing.
func copyHalf(dst, src *net.TCPConn, buffered bool) {
	var err error
	if buffered {
		// Plain Reader and Writer, so that io.CopyBuffer cannot find
		// ReadFrom or WriteTo and splice.
		_, err = io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, make([]byte, 256<<10))
	} else {
		_, err = io.Copy(dst, src)
	}
	if err != nil && !errors.Is(err, net.ErrClosed) {
		_ = dst.SetLinger(0)
	}
	_ = dst.CloseWrite()
}

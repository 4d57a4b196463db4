package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof" // --pprof
	"time"
)

// servePprof serves Go's profiles on addr ("" serves nothing) and logs the address it got, so
// a launcher can pass port 0 to every process of a cluster.
func servePprof(addr string, log *slog.Logger) (stop func(), err error) {
	if addr == "" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%w: --pprof: %w", errUsage, err)
	}
	srv := &http.Server{Handler: http.DefaultServeMux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	log.Info("pprof", "addr", ln.Addr().String())
	return func() { srv.Close() }, nil
}

// Package instanceapi is the contract between the refdb control plane and DB instances.
//
// Every `refdb instance` serves a small HTTP/JSON admin API on `--admin 127.0.0.1:PORT`:
//
//	GET  /status   -> Status (200), the instance's role, epoch, VDL, read point and lag
//	POST /promote  <- PromoteRequest, -> Status (200) once the instance serves as the writer
//
// Errors come back as a non-2xx status with a JSON body {"error": "..."}; the Client turns
// them into *Error. A promote that is already running answers 409.
//
// POST /promote turns a reader into the writer: the instance must run volume recovery
// (seal a read quorum of every PG, compute the VDL, install an epoch >= MinEpoch and truncate
// above the VDL on a write quorum), switch to read-write and only then answer 200. Promoting
// the writer again is a no-op that returns its status. Any failure answers 500 with the
// reason, and the instance stays as it was (still a reader) so the control plane can try
// another candidate.
//
// Wiring inside the instance takes a few lines:
//
//	h := instanceapi.Handler(
//		func(ctx context.Context) (instanceapi.Status, error) { return inst.Status(), nil },
//		func(ctx context.Context, req instanceapi.PromoteRequest) (instanceapi.Status, error) {
//			if err := inst.Promote(ctx, req.MinEpoch); err != nil { return instanceapi.Status{}, err }
//			return inst.Status(), nil
//		})
//	srv, err := instanceapi.Listen(*adminAddr, h) // binds now, so a port in use fails at start
//	if err != nil { return err }
//	go srv.Serve(ctx)                             // stops when ctx ends
package instanceapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Role of an instance.
type Role string

const (
	RoleWriter Role = "writer"
	RoleReader Role = "reader"
)

// Status is what GET /status answers.
type Status struct {
	ID    string `json:"id"`
	Role  Role   `json:"role"`
	AZ    string `json:"az"`
	MySQL string `json:"mysql"` // MySQL protocol address, host:port
	PID   int    `json:"pid"`
	// Epoch is the volume epoch the instance works under (the writer's, for a reader).
	Epoch uint64 `json:"epoch"`
	// VDL is the volume durable LSN the instance knows of.
	VDL uint64 `json:"vdl"`
	// ReadPoint is the LSN up to which the instance shows transactions (the VDL on the writer).
	ReadPoint uint64 `json:"read_point"`
	// LagMS is the reader's replica lag in milliseconds (0 on the writer).
	LagMS float64 `json:"lag_ms"`
	// Healthy is false while the instance cannot serve queries (recovering, storage lost).
	Healthy bool      `json:"healthy"`
	Started time.Time `json:"started"`
	// StalledMS is, on the writer, how long commits have waited without the VDL moving
	// (0 when none waits): a writer cut off from storage answers but cannot commit.
	StalledMS float64 `json:"stalled_ms,omitempty"`
	// Fenced is, on a writer, why it can no longer commit: a newer epoch was installed (or
	// sealed, by a promote that then failed) on storage. Such a writer answers, fails every
	// commit at once and never stalls; the control plane must replace it. Empty otherwise.
	Fenced string `json:"fenced,omitempty"`
	// MirrorHits and MirrorMisses count a reader's reads answered from its mirror of the
	// ranges it scanned, and those sent to storage (engine.Mirror).
	MirrorHits   uint64 `json:"mirror_hits,omitempty"`
	MirrorMisses uint64 `json:"mirror_misses,omitempty"`
	// StreamLag is a reader's replica lag as Aurora defines it, per streamed commit batch since
	// the instance started: from the writer's durable acknowledgement to the reader's read
	// point passing it (REPLICA_LAG_IN_MILLISECONDS is its latest value).
	StreamLag *LagPercentiles `json:"stream_lag,omitempty"`
}

// LagPercentiles summarizes a lag distribution in milliseconds.
type LagPercentiles struct {
	Count int64   `json:"count"`
	P50MS float64 `json:"p50_ms"`
	P99MS float64 `json:"p99_ms"`
	MaxMS float64 `json:"max_ms"`
}

// PromoteRequest is the body of POST /promote.
type PromoteRequest struct {
	// MinEpoch is the lowest epoch the new writer may install; the control plane allocates
	// it above every epoch it has seen, so concurrent recoveries rarely race on a number.
	MinEpoch uint64 `json:"min_epoch"`
}

// StatusFunc reports the instance's status.
type StatusFunc func(ctx context.Context) (Status, error)

// PromoteFunc makes the instance the writer and returns once it serves writes.
type PromoteFunc func(ctx context.Context, req PromoteRequest) (Status, error)

// Error is a non-2xx answer of the admin API.
type Error struct {
	Code    int
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("instance admin: %d: %s", e.Code, e.Message) }

// ErrPromoteInProgress is answered (409) when a promote is already running.
var ErrPromoteInProgress = errors.New("a promote is already in progress")

// maxBody bounds request and response bodies; status documents are tiny.
const maxBody = 1 << 20

// Handler serves the admin API over status and promote. Promotes are serialised: a second
// one while the first runs gets 409.
func Handler(status StatusFunc, promote PromoteFunc) http.Handler {
	var promoting sync.Mutex
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		st, err := status(r.Context())
		if err != nil {
			WriteError(w, http.StatusInternalServerError, err)
			return
		}
		WriteJSON(w, http.StatusOK, st)
	})
	mux.HandleFunc("POST /promote", func(w http.ResponseWriter, r *http.Request) {
		var req PromoteRequest
		body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
		if err != nil {
			WriteError(w, http.StatusBadRequest, fmt.Errorf("reading body: %w", err))
			return
		}
		if len(bytes.TrimSpace(body)) > 0 {
			if err := json.Unmarshal(body, &req); err != nil {
				WriteError(w, http.StatusBadRequest, fmt.Errorf("malformed promote request: %w", err))
				return
			}
		}
		if !promoting.TryLock() {
			WriteError(w, http.StatusConflict, ErrPromoteInProgress)
			return
		}
		defer promoting.Unlock()
		st, err := promote(r.Context(), req)
		if err != nil {
			WriteError(w, http.StatusInternalServerError, fmt.Errorf("promote: %w", err))
			return
		}
		WriteJSON(w, http.StatusOK, st)
	})
	return mux
}

// WriteJSON answers v as JSON with the given code.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	_ = enc.Encode(v) // the client went away; nothing to do
}

// WriteError answers {"error": err} with the given code.
func WriteError(w http.ResponseWriter, code int, err error) {
	WriteJSON(w, code, map[string]string{"error": err.Error()})
}

// Server is a started admin HTTP server.
type Server struct {
	ln  net.Listener
	srv *http.Server
}

// Listen binds addr (use 127.0.0.1) now, so a port in use is reported at start.
func Listen(addr string, h http.Handler) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("admin listen %s: %w", addr, err)
	}
	return &Server{ln: ln, srv: &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}}, nil
}

// Addr is the bound address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Serve serves until ctx ends, then shuts down (in-flight requests get a second).
func (s *Server) Serve(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("admin serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := s.srv.Shutdown(sctx); err != nil {
		s.srv.Close()
	}
	<-errc
	return nil
}

// Client talks to one instance's admin API.
type Client struct {
	base string
	http *http.Client
}

// NewClient returns a client for the admin API at addr ("127.0.0.1:PORT" or a URL).
// Every call is bounded by its context; use context.WithTimeout for heartbeats.
func NewClient(addr string) *Client {
	base := addr
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	return &Client{base: strings.TrimRight(base, "/"), http: &http.Client{Transport: transport}}
}

// transport keeps a few idle connections per instance so heartbeats reuse them.
var transport = &http.Transport{
	DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
	MaxIdleConnsPerHost: 4,
	IdleConnTimeout:     30 * time.Second,
}

// CloseIdle closes idle keep-alive connections (tests use it before leak checks).
func CloseIdle() { transport.CloseIdleConnections() }

// Status asks GET /status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var st Status
	err := Do(ctx, c.http, http.MethodGet, c.base+"/status", nil, &st)
	return st, err
}

// Promote asks POST /promote and waits for the instance to serve as the writer.
func (c *Client) Promote(ctx context.Context, req PromoteRequest) (Status, error) {
	var st Status
	err := Do(ctx, c.http, http.MethodPost, c.base+"/promote", req, &st)
	return st, err
}

// Do sends body (JSON, nil for none) and decodes a 2xx answer into out (nil to ignore).
// A non-2xx answer is an *Error carrying the server's message.
func Do(ctx context.Context, hc *http.Client, method, url string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encoding request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, url, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, url, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return fmt.Errorf("%s %s: reading answer: %w", method, url, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(data))
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		return &Error{Code: resp.StatusCode, Message: msg}
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: malformed answer: %w", method, url, err)
		}
	}
	return nil
}

package rpc

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/aurorabench/aurorabench/refdb/redo"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func serve(t *testing.T, secret []byte) (string, <-chan *Conn, func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conns := make(chan *Conn, 4)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			ac, err := Accept(c, secret)
			if err != nil {
				c.Close()
				continue
			}
			conns <- ac
		}
	}()
	return ln.Addr().String(), conns, func() { ln.Close(); <-done }
}

func TestHandshakeAndMessages(t *testing.T) {
	addr, conns, stop := serve(t, []byte("k"))
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := Dial(ctx, addr, "mallory", []byte("wrong")); !errors.Is(err, ErrAuth) {
		t.Fatalf("wrong secret: %v", err)
	}
	c, err := Dial(ctx, addr, "alice", []byte("k"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	srv := <-conns
	defer srv.Close()
	if srv.PeerID != "alice" {
		t.Fatalf("peer id %q", srv.PeerID)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	out := NewOutbox(c, 16, log)
	for i := 0; i < 3; i++ {
		out.Send(&redo.Message{Type: redo.MsgStatus, ReqID: uint64(i)})
	}
	for i := 0; i < 3; i++ {
		m, err := srv.Recv()
		if err != nil || m.ReqID != uint64(i) {
			t.Fatalf("recv %d: %v %v", i, m, err)
		}
	}
	out.Close()
	if out.Send(&redo.Message{Type: redo.MsgStatus}) {
		t.Fatal("send after close accepted")
	}
}

func TestLinkReconnects(t *testing.T) {
	addr, conns, stop := serve(t, []byte("k"))
	defer stop()
	got := make(chan *redo.Message, 8)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	l := NewLink(context.Background(), addr, "w", []byte("k"), func(m *redo.Message) { got <- m }, log)
	defer l.Close()
	first := <-conns
	first.Close() // the link notices and dials again
	second := <-conns
	defer second.Close()
	for !l.Send(&redo.Message{Type: redo.MsgStatus, ReqID: 7}) {
		time.Sleep(5 * time.Millisecond)
	}
	m, err := second.Recv()
	if err != nil || m.ReqID != 7 {
		t.Fatalf("after reconnect: %v %v", m, err)
	}
	second.write(&redo.Message{Type: redo.MsgStatusResp, ReqID: 8})
	second.flush()
	if m := <-got; m.ReqID != 8 {
		t.Fatalf("link delivered %v", m)
	}
}

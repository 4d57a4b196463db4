package instanceapi_test

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/aurorabench/aurorabench/refdb/instanceapi"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestHandlerAndClient(t *testing.T) {
	var mu sync.Mutex
	st := instanceapi.Status{ID: "db2", Role: instanceapi.RoleReader, AZ: "az2", MySQL: "127.0.0.1:1", Epoch: 3, VDL: 90,
		ReadPoint: 88, LagMS: 4.5, Healthy: true, Started: time.Now().UTC().Truncate(time.Second)}
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	h := instanceapi.Handler(
		func(context.Context) (instanceapi.Status, error) {
			mu.Lock()
			defer mu.Unlock()
			return st, nil
		},
		func(ctx context.Context, req instanceapi.PromoteRequest) (instanceapi.Status, error) {
			entered <- struct{}{}
			<-release
			if req.MinEpoch == 0 {
				return instanceapi.Status{}, errors.New("recovery needs an epoch")
			}
			mu.Lock()
			defer mu.Unlock()
			st.Role, st.Epoch = instanceapi.RoleWriter, req.MinEpoch
			return st, nil
		})
	srv, err := instanceapi.Listen("127.0.0.1:0", h)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()
	defer func() {
		cancel()
		if err := <-served; err != nil {
			t.Error(err)
		}
		instanceapi.CloseIdle()
	}()

	cl := instanceapi.NewClient(srv.Addr())
	got, err := cl.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got != st {
		t.Fatalf("status = %+v, want %+v", got, st)
	}

	// A promote that fails answers 500 with the reason; a concurrent one gets 409.
	errc := make(chan error, 1)
	go func() {
		_, err := cl.Promote(ctx, instanceapi.PromoteRequest{})
		errc <- err
	}()
	<-entered
	_, err = cl.Promote(ctx, instanceapi.PromoteRequest{MinEpoch: 4})
	var ae *instanceapi.Error
	if !errors.As(err, &ae) || ae.Code != http.StatusConflict {
		t.Fatalf("concurrent promote: got %v, want a 409", err)
	}
	close(release)
	err = <-errc
	if !errors.As(err, &ae) || ae.Code != http.StatusInternalServerError || ae.Message != "promote: recovery needs an epoch" {
		t.Fatalf("failed promote: got %v", err)
	}

	go func() { <-entered }()
	got, err = cl.Promote(ctx, instanceapi.PromoteRequest{MinEpoch: 4})
	if err != nil {
		t.Fatal(err)
	}
	if got.Role != instanceapi.RoleWriter || got.Epoch != 4 {
		t.Fatalf("after promote: %+v", got)
	}

	// A deadline bounds every call: a server that does not answer fails the call.
	hung, err := instanceapi.Listen("127.0.0.1:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	if err != nil {
		t.Fatal(err)
	}
	hctx, hcancel := context.WithCancel(context.Background())
	hdone := make(chan error, 1)
	go func() { hdone <- hung.Serve(hctx) }()
	dctx, dcancel := context.WithTimeout(ctx, 100*time.Millisecond)
	_, err = instanceapi.NewClient("http://" + hung.Addr()).Status(dctx)
	dcancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("hung server: got %v, want deadline exceeded", err)
	}
	hcancel()
	<-hdone
}

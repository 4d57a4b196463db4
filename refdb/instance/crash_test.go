package instance_test

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"go.uber.org/goleak"

	"github.com/aurorabench/aurorabench/refdb/engine/localvol"
	"github.com/aurorabench/aurorabench/refdb/instance"
	"github.com/aurorabench/aurorabench/refdb/redo"
)

// childEnv carries the instance configuration to a re-executed test binary, which then runs
// the writer instead of the tests: a real OS process the test can SIGKILL.
const childEnv = "REFDB_INSTANCE_TEST_CHILD"

type childConfig struct {
	Peers  []redo.Peer
	PGs    int
	Secret string
	ID     string
}

func TestMain(m *testing.M) {
	if cfg := os.Getenv(childEnv); cfg != "" {
		os.Exit(runChild(cfg))
	}
	// The driver logs every connection the SIGKILL breaks; the test checks outcomes instead.
	_ = mysql.SetLogger(log.New(io.Discard, "", 0))
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("github.com/dolthub/go-mysql-server/sql.(*BackgroundThreads).Add.func1"),
		goleak.IgnoreTopFunction("go.opencensus.io/stats/view.(*worker).start"),
	)
}

func runChild(raw string) int {
	var c childConfig
	if err := json.Unmarshal([]byte(raw), &c); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	err := instance.Run(context.Background(), instance.Config{Role: "writer", ID: c.ID, AZ: "az1", MySQL: "127.0.0.1:0",
		Storage: c.Peers, PGs: c.PGs, Secret: []byte(c.Secret), Create: true, User: "admin", Password: "pw",
		Logger: localvol.Quiet(), Ready: func(addr string) { fmt.Printf("listening %s\n", addr) }})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

type child struct {
	cmd  *exec.Cmd
	addr string
}

func startChild(t *testing.T, c *localvol.Cluster, id string) *child {
	t.Helper()
	cfg, _ := json.Marshal(childConfig{Peers: c.Peers, PGs: c.PGs, Secret: string(c.Secret), ID: id})
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(cfg))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ch := &child{cmd: cmd}
	t.Cleanup(func() { ch.kill() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "listening ") {
		t.Fatalf("writer did not start: %q %v", line, err)
	}
	ch.addr = strings.TrimSpace(strings.TrimPrefix(line, "listening "))
	return ch
}

// kill sends SIGKILL to the child this test started (by its PID) and reaps it.
func (c *child) kill() {
	if c.cmd.ProcessState != nil {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	_ = c.cmd.Wait()
}

// TestWriterSIGKILLLosesNoAcknowledgedCommit kills the writer process mid-load; after a
// restart (recovery under a new epoch) every acknowledged transaction is present and every
// transaction is all-or-nothing.
func TestWriterSIGKILLLosesNoAcknowledgedCommit(t *testing.T) {
	c := startStorage(t, 4)
	w := startChild(t, c, "db1")
	db, err := sql.Open("mysql", "admin:pw@tcp("+w.addr+")/")
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"CREATE DATABASE bench", "CREATE TABLE bench.t (id INT PRIMARY KEY, grp INT NOT NULL, INDEX g (grp))"} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	// Each transaction inserts 3 rows of one group. Acknowledged groups must survive whole.
	var acked sync.Map
	var nAcked atomic.Int64
	var next atomic.Int64
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for g := 0; g < 6; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				grp := int(next.Add(1))
				tx, err := db.BeginTx(ctx, nil)
				if err != nil {
					return
				}
				ok := true
				for j := 0; j < 3 && ok; j++ {
					_, err := tx.Exec("INSERT INTO bench.t VALUES (?, ?)", grp*3+j, grp)
					ok = err == nil
				}
				if !ok || tx.Commit() != nil {
					tx.Rollback()
					return // the writer died
				}
				acked.Store(grp, true)
				nAcked.Add(1)
			}
		}()
	}
	deadline := time.Now().Add(30 * time.Second)
	for nAcked.Load() < 150 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	w.kill()
	stop()
	wg.Wait()
	db.Close()
	if nAcked.Load() == 0 {
		t.Fatal("no transaction acknowledged before the kill")
	}

	w2 := startChild(t, c, "db2")
	db2, err := sql.Open("mysql", "admin:pw@tcp("+w2.addr+")/bench")
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	rows, err := db2.Query("SELECT grp, COUNT(*) FROM t GROUP BY grp")
	if err != nil {
		t.Fatal(err)
	}
	present := map[int]int{}
	for rows.Next() {
		var grp, n int
		if err := rows.Scan(&grp, &n); err != nil {
			t.Fatal(err)
		}
		present[grp] = n
	}
	rows.Close()
	for grp, n := range present {
		if n != 3 {
			t.Errorf("transaction %d is half-visible: %d of 3 rows", grp, n)
		}
	}
	lost := 0
	acked.Range(func(k, _ any) bool {
		if present[k.(int)] != 3 {
			lost++
		}
		return true
	})
	if lost > 0 {
		t.Fatalf("%d of %d acknowledged transactions lost", lost, nAcked.Load())
	}
	// The index agrees with the rows after recovery.
	var viaIndex int
	if err := db2.QueryRow("SELECT COUNT(*) FROM t WHERE grp >= 0").Scan(&viaIndex); err != nil || viaIndex != 3*len(present) {
		t.Fatalf("index scan after recovery: %d rows (%v), want %d", viaIndex, err, 3*len(present))
	}
	t.Logf("%d transactions acknowledged before SIGKILL, %d present after restart", nAcked.Load(), len(present))
	// The restarted writer accepts writes.
	if _, err := db2.Exec("INSERT INTO t VALUES (-1, -1)"); err != nil {
		t.Fatal(err)
	}
}

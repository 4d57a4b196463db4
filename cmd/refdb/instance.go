package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/aurorabench/aurorabench/refdb/instance"
	"github.com/aurorabench/aurorabench/refdb/redo"
)

// runInstance is `refdb instance`: a MySQL-protocol DB instance on the shared volume.
func runInstance(ctx context.Context, args []string, stderr io.Writer) error {
	fs := pflag.NewFlagSet("refdb instance", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	role := fs.String("role", "writer", "instance role: writer or reader")
	id := fs.String("id", "", "instance id, unique in the cluster, e.g. db1")
	az := fs.String("az", "", "availability zone of the instance, e.g. az1")
	mysqlAddr := fs.String("mysql", "127.0.0.1:3306", "MySQL protocol listen address")
	adminAddr := fs.String("admin", "", "admin API listen address (GET /status, POST /promote, the replica stream), e.g. 127.0.0.1:3481")
	writerStream := fs.String("writer-stream", "", "reader: admin address of the writer to stream from")
	peers := fs.String("peers", "", "reader: admin addresses of the cluster's instances, comma-separated (the writer is found among them)")
	control := fs.String("control", "", "reader: control plane URL, asked for the current writer")
	database := fs.String("database", "", "writer: create this database if it does not exist")
	storageList := fs.String("storage", "", "the 6 storage nodes: id=host:port or id/az=host:port, comma-separated")
	pgs := fs.Int("pgs", 4, "protection groups of the volume (used when creating it; must match afterwards)")
	create := fs.Bool("create", false, "bootstrap the volume if no storage node hosts it yet")
	secret := fs.String("secret", "", "cluster secret (or set REFDB_SECRET, or use --secret-file)")
	secretFile := fs.String("secret-file", "", "file holding the cluster secret")
	user := fs.String("user", "admin", "MySQL user clients log in with")
	password := fs.String("password", "", "password of --user (or set REFDB_PASSWORD)")
	lockWait := fs.Duration("lock-wait-timeout", 0, "default row lock wait, as innodb_lock_wait_timeout (default 50s)")
	commitTimeout := fs.Duration("commit-timeout", 0, "how long a commit waits for a storage write quorum before failing with error 1180 (default 10s)")
	cacheMB := fs.Int64("cache-mb", 256, "row version cache size in MiB")
	openTimeout := fs.Duration("open-timeout", 0, "bound on volume recovery at start (default 60s)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	pprofAddr := fs.String("pprof", "", "serve Go's net/http/pprof profiles on this address (e.g. 127.0.0.1:6060)")
	readerNice := fs.Int("reader-nice", -10, "nice value while a reader, -20..0 (0: leave it; a writer runs at 0); needs CAP_SYS_NICE, else the reader logs it and runs as it is")
	unsafe := unsafeFlags(fs, "instance")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil
		}
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	sec, err := resolveSecret(*secret, *secretFile)
	if err != nil {
		return err
	}
	pw := *password
	if pw == "" {
		pw = os.Getenv("REFDB_PASSWORD")
	}
	storage, err := parseStorage(*storageList)
	switch {
	case err != nil:
		return fmt.Errorf("%w: --storage: %w", errUsage, err)
	case *id == "":
		return fmt.Errorf("%w: --id is required", errUsage)
	case sec == "":
		return fmt.Errorf("%w: a cluster secret is required (--secret, --secret-file or REFDB_SECRET)", errUsage)
	case *user == "":
		return fmt.Errorf("%w: --user is required (no anonymous access)", errUsage)
	case *readerNice < -20 || *readerNice > 0:
		return fmt.Errorf("%w: --reader-nice %d: want -20..0", errUsage, *readerNice)
	case *role != "writer" && *role != "reader":
		return fmt.Errorf("%w: --role %q: want writer or reader", errUsage, *role)
	case *role == "reader" && *writerStream == "" && *peers == "" && *control == "":
		return fmt.Errorf("%w: a reader needs --writer-stream, --peers or --control to find the writer", errUsage)
	}
	var peerList []string
	for _, p := range strings.Split(*peers, ",") {
		if p = strings.TrimSpace(p); p != "" {
			peerList = append(peerList, p)
		}
	}
	u := unsafe()
	log, err := processLogger(stderr, *logLevel, u)
	if err != nil {
		return err
	}
	stopPprof, err := servePprof(*pprofAddr, log)
	if err != nil {
		return err
	}
	defer stopPprof()
	return instance.Run(ctx, instance.Config{Role: *role, ID: *id, AZ: *az, MySQL: *mysqlAddr, Admin: *adminAddr,
		WriterStream: *writerStream, Peers: peerList, Control: *control, Database: *database, Storage: storage, PGs: *pgs,
		Secret: []byte(sec), Create: *create, User: *user, Password: pw, LockWaitTimeout: *lockWait,
		CacheBytes: *cacheMB << 20, OpenTimeout: *openTimeout, Logger: log, CommitTimeout: *commitTimeout,
		UnsafeAck3of6: u.Ack3of6, UnsafeNoTruncation: u.NoTruncation, UnsafeReadAboveVDL: u.ReadAboveVDL, ReaderNice: *readerNice,
		// The first line on stdout is the address, so a launcher using port 0 learns it.
		Ready: func(addr string) { fmt.Printf("listening %s\n", addr) }})
}

// parseStorage parses "s1=127.0.0.1:7001,s2/az1=127.0.0.1:7002,...". Without an AZ, nodes are
// placed two per AZ in order (az1, az1, az2, az2, az3, az3), the default cluster layout.
func parseStorage(s string) ([]redo.Peer, error) {
	if s == "" {
		return nil, errors.New("required")
	}
	var peers []redo.Peer
	for i, part := range strings.Split(s, ",") {
		name, addr, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || name == "" || addr == "" {
			return nil, fmt.Errorf("%q is not id=host:port", part)
		}
		id, az, hasAZ := strings.Cut(name, "/")
		if !hasAZ {
			az = fmt.Sprintf("az%d", i/2+1)
		}
		peers = append(peers, redo.Peer{ID: id, AZ: az, Addr: addr})
	}
	return peers, nil
}

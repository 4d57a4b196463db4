package workloads

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/aurorabench/aurorabench/targets"
)

// WaitReplicas blocks until every replica shows everything the writer has
// committed so far (the workload's schema and initial data), so no check
// mistakes a replica still applying the setup for an anomaly. It writes a
// fresh token on the writer and polls each replica directly until it
// appears there.
func WaitReplicas(ctx context.Context, env *Env, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	upsert := "INSERT INTO aurorabench_sync (id, token) VALUES (1, ?) ON DUPLICATE KEY UPDATE token = VALUES(token)"
	if env.Dialect == targets.Postgres {
		upsert = "INSERT INTO aurorabench_sync (id, token) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET token = EXCLUDED.token"
	}
	token := time.Now().UnixNano()
	if err := execAll(ctx, env.Writer, "CREATE TABLE IF NOT EXISTS aurorabench_sync (id INTEGER PRIMARY KEY, token BIGINT NOT NULL)"); err != nil {
		return err
	}
	if _, err := env.Writer.ExecContext(ctx, upsert, token); err != nil {
		return fmt.Errorf("write sync token: %w", err)
	}
	dbs := map[string]*sql.DB{}
	for id, dsn := range env.Replicas {
		db, err := targets.OpenDB(ctx, env.Dialect, dsn)
		if err != nil {
			return fmt.Errorf("replica %s: %w", id, err)
		}
		defer db.Close()
		dbs[id] = db
	}
	if len(dbs) == 0 {
		dbs["reader"] = env.Reader
	}
	read := q(env.Dialect, "SELECT token FROM aurorabench_sync WHERE id = ?")
	for id, db := range dbs {
		for {
			var got int64
			err := db.QueryRowContext(ctx, read, 1).Scan(&got)
			if err == nil && got == token {
				break
			}
			if ctx.Err() != nil {
				if err == nil || errors.Is(err, sql.ErrNoRows) {
					err = errors.New("setup not replicated yet")
				}
				return fmt.Errorf("replica %s did not catch up with the setup within %s: %w", id, timeout, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}

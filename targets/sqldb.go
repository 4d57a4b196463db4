package targets

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"time"

	"github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
)

func init() {
	// The MySQL driver logs every broken connection to stderr; under fault
	// injection that is thousands of lines. Errors reach the history anyway.
	_ = mysql.SetLogger(slogLogger{})
}

type slogLogger struct{}

func (slogLogger) Print(v ...any) { slog.Debug("mysql driver", "msg", fmt.Sprint(v...)) }

// DriverName is the database/sql driver for a dialect.
func DriverName(d Dialect) string {
	if d == Postgres {
		return "pgx"
	}
	return "mysql"
}

// OpenDB opens a connection pool to dsn and checks it answers within the
// context's deadline.
func OpenDB(ctx context.Context, d Dialect, dsn string) (*sql.DB, error) {
	db, err := sql.Open(DriverName(d), dsn)
	if err != nil {
		return nil, fmt.Errorf("open %s connection: %w", d, err)
	}
	db.SetConnMaxIdleTime(time.Minute)
	// A cluster that just started (or just failed over) may accept a
	// connection on its endpoint before a backend is ready behind it: retry
	// for a while rather than fail on the first refused handshake.
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		err = db.PingContext(pctx)
		if err == nil {
			return db, nil
		}
		select {
		case <-pctx.Done():
			db.Close()
			return nil, fmt.Errorf("connect to %s: %w", d, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// MySQLDSN builds a go-sql-driver/mysql DSN over TCP. interpolateParams
// keeps a statement with arguments to one round trip, like pgx.
func MySQLDSN(user, password, addr, db string) string {
	return fmt.Sprintf("%s:%s@tcp(%s)/%s?interpolateParams=true&timeout=5s&readTimeout=30s&writeTimeout=30s", user, password, addr, db)
}

// PostgresDSN builds a pgx DSN.
func PostgresDSN(user, password, addr, db string) string {
	return fmt.Sprintf("postgres://%s:%s@%s/%s?sslmode=disable&connect_timeout=5", user, password, addr, db)
}

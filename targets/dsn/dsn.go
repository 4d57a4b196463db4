// Package dsn is a target for a server that already runs elsewhere, given
// by URL: mysql://user:pass@host:port/db or postgres://user:pass@host:port/db
// (postgresql:// too). aurorabench did not start it, so it has no nodes to
// fault, cannot fail over, and Close leaves it alone.
package dsn

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/aurorabench/aurorabench/targets"
)

// Target is an existing server reached by DSN; writer and reader are the
// same address.
type Target struct {
	name    string
	dialect targets.Dialect
	dsn     string
}

var _ targets.Target = (*Target)(nil)

// Parse converts a target URL into its dialect and database/sql DSN.
func Parse(rawURL string) (targets.Dialect, string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", "", targets.SetupError("invalid target URL: %v", redactErr(err, rawURL))
	}
	user := u.User.Username()
	pass, _ := u.User.Password()
	db := strings.TrimPrefix(u.Path, "/")
	switch u.Scheme {
	case "mysql", "mariadb":
		host := u.Host
		if host == "" {
			host = "127.0.0.1:3306"
		} else if u.Port() == "" {
			host = net.JoinHostPort(u.Hostname(), "3306")
		}
		dsn := targets.MySQLDSN(user, pass, host, db)
		// Extra driver parameters given in the URL are passed on.
		if q := u.Query(); len(q) > 0 {
			dsn += "&" + q.Encode()
		}
		return targets.MySQL, dsn, nil
	case "postgres", "postgresql":
		q := u.Query()
		if q.Get("sslmode") == "" {
			q.Set("sslmode", "prefer")
		}
		if q.Get("connect_timeout") == "" {
			q.Set("connect_timeout", "5")
		}
		u.RawQuery = q.Encode()
		return targets.Postgres, u.String(), nil
	case "":
		return "", "", targets.SetupError("target %q is not a URL (mysql://... or postgres://...)", Redact(rawURL))
	default:
		return "", "", targets.SetupError("unsupported target URL scheme %q (want mysql, postgres or postgresql)", u.Scheme)
	}
}

// Open checks that the server at rawURL answers and returns it as a
// target. An unreachable server is a setup error.
func Open(ctx context.Context, rawURL string) (targets.Target, error) {
	d, dsn, err := Parse(rawURL)
	if err != nil {
		return nil, err
	}
	db, err := targets.OpenDB(ctx, d, dsn)
	if err != nil {
		return nil, targets.SetupError("cannot reach %s: %s", Redact(rawURL), oneLine(err))
	}
	db.Close()
	return &Target{name: string(d), dialect: d, dsn: dsn}, nil
}

// Name is the dialect ("mysql" or "postgres").
func (t *Target) Name() string                { return t.name }
func (t *Target) Dialect() targets.Dialect    { return t.dialect }
func (t *Target) WriterDSN() string           { return t.dsn }
func (t *Target) ReaderDSN() string           { return t.dsn }
func (t *Target) Nodes() []targets.Node       { return nil }
func (t *Target) Logs() map[string]string     { return map[string]string{} }
func (t *Target) Close(context.Context) error { return nil }

// Failover is not possible on a server aurorabench does not run.
func (t *Target) Failover(context.Context) error { return targets.ErrNoFailover }

// Redact hides the password in a target URL, for messages and reports.
func Redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.User == nil {
		if i := strings.Index(rawURL, "@"); i >= 0 {
			if j := strings.Index(rawURL, "://"); j >= 0 && j < i {
				return rawURL[:j+3] + "***" + rawURL[i:]
			}
		}
		return rawURL
	}
	return u.Redacted()
}

func redactErr(err error, rawURL string) string {
	s := oneLine(err)
	if u, perr := url.Parse(rawURL); perr == nil && u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" {
			s = strings.ReplaceAll(s, p, "xxxxx")
		}
	}
	return strings.ReplaceAll(s, rawURL, Redact(rawURL))
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

// String describes the target without its password.
func (t *Target) String() string { return fmt.Sprintf("%s target", t.name) }

package sqlfront_test

import (
	"database/sql"
	"fmt"
	"testing"
)

// TestAccountStatementsRefused: refdb has one account, set at start. Statements that would
// create, change or drop accounts, roles or privileges get error 1235 on the same connection,
// which keeps working (CREATE USER used to panic and drop it), and change nothing; FLUSH
// PRIVILEGES succeeds.
func TestAccountStatementsRefused(t *testing.T) {
	w := startWriter(t)
	db := w.db("")
	c := w.conn(db)
	for _, q := range []string{
		"CREATE USER bob IDENTIFIED BY 'x'",
		"CREATE USER IF NOT EXISTS admin",
		"DROP USER admin",
		"RENAME USER admin TO root",
		"ALTER USER admin IDENTIFIED BY 'y'",
		"GRANT SELECT ON *.* TO admin",
		"REVOKE ALL ON *.* FROM admin",
		"CREATE ROLE r1",
		"DROP ROLE r1",
		"GRANT r1 TO admin",
	} {
		if _, err := c.ExecContext(w.ctx, q); errCode(err) != 1235 {
			t.Errorf("%s: %v, want error 1235", q, err)
		}
		var one int
		if err := c.QueryRowContext(w.ctx, "SELECT 1").Scan(&one); err != nil {
			t.Fatalf("after %s the connection is gone: %v", q, err)
		}
	}
	// Prepared, too: refused at prepare or at execution.
	if st, err := c.PrepareContext(w.ctx, "CREATE USER carol IDENTIFIED BY 'x'"); err == nil {
		_, err = st.ExecContext(w.ctx)
		st.Close()
		if errCode(err) != 1235 {
			t.Errorf("prepared CREATE USER: %v, want error 1235", err)
		}
	} else if errCode(err) != 1235 {
		t.Errorf("preparing CREATE USER: %v, want error 1235", err)
	}
	mustExecConn(t, c, "FLUSH PRIVILEGES")
	if got := queryString(t, c, "SELECT user FROM mysql.user ORDER BY user"); got != ` ["admin"]` {
		t.Errorf("accounts after the refused statements: %s", got)
	}
	// The account still logs in with its password, and only with it.
	other, err := sql.Open("mysql", fmt.Sprintf("admin:nope@tcp(%s)/", w.fe.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := other.PingContext(w.ctx); errCode(err) != 1045 {
		t.Errorf("wrong password: %v, want error 1045", err)
	}
	mustExec(t, w.db(""), "SELECT 1")
}

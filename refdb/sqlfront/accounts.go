package sqlfront

import (
	"github.com/dolthub/go-mysql-server/sql"
	"github.com/dolthub/go-mysql-server/sql/analyzer"
	"github.com/dolthub/go-mysql-server/sql/plan"
	"github.com/dolthub/go-mysql-server/sql/transform"
	"github.com/dolthub/vitess/go/mysql"
)

// refdb has one account, the user and password the cluster starts with (Config.User): every
// instance, writer and readers alike, gets it at start, and nothing stores accounts in the
// volume. go-mysql-server's account statements edit its in-memory grant tables and then
// persist them through a persister refdb does not have (CREATE USER panicked on it, dropping
// the connection), and an account made on one instance would exist nowhere else and be gone
// after a restart. So they are refused before they change anything. (FLUSH PRIVILEGES, which
// only persists, succeeds: see the persister set in New.)

// refuseAccountsRule is the id of the analyzer rule that refuses account statements; it is
// outside go-mysql-server's own ids.
const refuseAccountsRule analyzer.RuleId = 1<<20 + 2

// errAccounts is the refusal: ER_NOT_SUPPORTED_YET.
func errAccounts() error {
	return sqlErr(mysql.ERNotSupportedYet, "42000",
		"This version of refdb doesn't yet support account management (CREATE/ALTER/DROP/RENAME USER, GRANT, REVOKE, roles, SET PASSWORD): its one account is set when the cluster starts")
}

// refuseAccounts is an analyzer rule: a statement that would create, change or drop an account,
// a role or a privilege fails with errAccounts.
func refuseAccounts(_ *sql.Context, _ *analyzer.Analyzer, n sql.Node, _ *plan.Scope, _ analyzer.RuleSelector, _ *sql.QueryFlags) (sql.Node, transform.TreeIdentity, error) {
	var refused bool
	transform.Inspect(n, func(n sql.Node) bool {
		switch n.(type) {
		case *plan.CreateUser, *plan.DropUser, *plan.RenameUser, *plan.AlterUser,
			*plan.Grant, *plan.GrantRole, *plan.GrantProxy,
			*plan.Revoke, *plan.RevokeAll, *plan.RevokeRole, *plan.RevokeProxy,
			*plan.CreateRole, *plan.DropRole:
			refused = true
		}
		return !refused
	})
	if refused {
		return nil, transform.SameTree, errAccounts()
	}
	return n, transform.SameTree, nil
}

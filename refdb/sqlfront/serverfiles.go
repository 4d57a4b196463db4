package sqlfront

import (
	"strings"

	"github.com/dolthub/vitess/go/mysql"
	"github.com/dolthub/vitess/go/vt/sqlparser"
)

// refdb, like Aurora, reads and writes no files on its own hosts for clients: Aurora loads
// from and exports to S3. go-mysql-server, with secure_file_priv empty (its default), would
// read any file the process can (LOAD DATA INFILE, LOAD_FILE) and write new ones anywhere
// (SELECT ... INTO OUTFILE / DUMPFILE). MySQL with secure_file_priv = NULL refuses the
// statements with 1290 and LOAD_FILE answers NULL; refdb does the same. LOAD DATA LOCAL, the
// client's own file, is go-mysql-server's to allow (local_infile).

// noServerFiles is secure_file_priv: a folder that does not exist, so go-mysql-server's own
// checks refuse every path (LOAD_FILE then answers NULL), behind checkServerFiles.
const noServerFiles = "/nonexistent/refdb-reads-and-writes-no-server-files"

// checkServerFiles answers 1290 for a statement that would read or write a file on the server;
// kw is its first keyword. Only the statement about to run is looked at (a multi-statement
// query comes back for each).
func checkServerFiles(kw, query string) error {
	if kw != "LOAD" && !containsFold(query, "file") { // INTO OUTFILE, INTO DUMPFILE
		return nil
	}
	stmt, err := sqlparser.Parse(firstStatement(query))
	if err != nil {
		return nil // go-mysql-server reports it
	}
	var into *sqlparser.Into
	switch s := stmt.(type) {
	case *sqlparser.Load:
		if !s.Local {
			return errSecureFilePriv()
		}
	case *sqlparser.Select:
		into = s.Into
	case *sqlparser.SetOp:
		into = s.Into
	}
	if into != nil && (into.Outfile != "" || into.Dumpfile != "") {
		return errSecureFilePriv()
	}
	return nil
}

func errSecureFilePriv() error {
	return sqlErr(mysql.EROptionPreventsStatement, "HY000", "The MySQL server is running with the --secure-file-priv option so it cannot execute this statement")
}

// containsFold reports whether s contains sub, ignoring ASCII case, without copying s: it runs
// on every text statement.
func containsFold(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(sub)], sub) {
			return true
		}
	}
	return false
}

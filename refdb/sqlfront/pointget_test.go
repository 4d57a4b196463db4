package sqlfront

import "testing"

func TestParsePointGet(t *testing.T) {
	for _, c := range []struct {
		q    string
		want bool
	}{
		{"SELECT c FROM sbtest1 WHERE id=?", true},
		{"select c, pad from bench.t where t.id = ? and k = ?", true},
		{"SELECT * FROM t WHERE ? = id", true},
		{"SELECT x.c FROM t AS x WHERE (x.id = ?)", true},
		{"SELECT c FROM t WHERE id = 5", false},           // a literal: the planner's job
		{"SELECT c FROM t WHERE id > ?", false},           // a range
		{"SELECT c FROM t WHERE id = ? OR id = ?", false}, // a disjunction
		{"SELECT c FROM t WHERE id = ? AND id = ?", false},
		{"SELECT c FROM t WHERE id = ? FOR UPDATE", false},
		{"SELECT c FROM t WHERE id = ? LIMIT 1", false},
		{"SELECT c FROM t WHERE id = ? ORDER BY c", false},
		{"SELECT DISTINCT c FROM t WHERE id = ?", false},
		{"SELECT c + 1 FROM t WHERE id = ?", false},
		{"SELECT COUNT(*) FROM t WHERE id = ?", false},
		{"SELECT c FROM t, u WHERE t.id = ?", false},
		{"SELECT c FROM t WHERE u.id = ?", false},
		{"SELECT t.* FROM t WHERE id = ?", false},
		{"SELECT c FROM t", false},
		{"UPDATE t SET c = 1 WHERE id = ?", false},
		{"SELECT c FROM t WHERE id = ? UNION SELECT c FROM t WHERE id = ?", false},
		{"SELECT c FROM (SELECT * FROM t) AS s WHERE id = ?", false},
		{"SELEC", false},
	} {
		if got := parsePointGet(c.q) != nil; got != c.want {
			t.Errorf("parsePointGet(%q) = %v, want %v", c.q, got, c.want)
		}
	}
}

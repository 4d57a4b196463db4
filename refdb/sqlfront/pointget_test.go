package sqlfront

import "testing"

// parsePointGet and parseRangeScan parse query for one fast-path shape each.
func parsePointGet(query string) *pointGet {
	return pointGetOf(parseSimpleSelect(query))
}

func parseRangeScan(query string) *rangeScan {
	return rangeScanOf(parseSimpleSelect(query))
}

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

func TestParsePointWrite(t *testing.T) {
	for _, c := range []struct {
		q    string
		want bool
	}{
		{"UPDATE sbtest1 SET c=? WHERE id=?", true},
		{"UPDATE sbtest1 SET k=k+1 WHERE id=?", true},
		{"update bench.t set k = k - ?, c = ? where t.id = ? and t.sub = ?", true},
		{"UPDATE t AS x SET x.k = x.k + 1 WHERE (x.id = ?)", true},
		{"UPDATE t SET k = j + ? WHERE ? = id", true},
		{"DELETE FROM sbtest1 WHERE id=?", true},
		{"delete from bench.t where t.id = ?", true},
		{"UPDATE t SET c = 'x' WHERE id = ?", false}, // a literal value: the planner's job
		{"UPDATE t SET k = k * 2 WHERE id = ?", false},
		{"UPDATE t SET k = 1 + k WHERE id = ?", false},
		{"UPDATE t SET k = k + 1.5 WHERE id = ?", false},
		{"UPDATE t SET k = (k + 1) WHERE id = ?", false},
		{"UPDATE t SET k = k + ? + 1 WHERE id = ?", false},
		{"UPDATE t SET c = ? WHERE id = 5", false},
		{"UPDATE t SET c = ? WHERE id > ?", false},
		{"UPDATE t SET c = ? WHERE id = ? OR id = ?", false},
		{"UPDATE t SET c = ? WHERE id = ? LIMIT 1", false},
		{"UPDATE t SET c = ? WHERE id = ? ORDER BY c", false},
		{"UPDATE IGNORE t SET c = ? WHERE id = ?", false},
		{"UPDATE t SET c = ?", false},
		{"UPDATE t, u SET t.c = ? WHERE t.id = ?", false},
		{"UPDATE t SET u.c = ? WHERE id = ?", false},
		{"UPDATE t SET c = ? WHERE u.id = ?", false},
		{"UPDATE /*+ hint */ t SET c = ? WHERE id = ?", false},
		{"/* c */ UPDATE t SET c = ? WHERE id = ?", false},
		{"WITH x AS (SELECT 1) UPDATE t SET c = ? WHERE id = ?", false},
		{"DELETE FROM t WHERE id = ? LIMIT 1", false},
		{"DELETE FROM t", false},
		{"DELETE t FROM t WHERE id = ?", false},
		{"DELETE FROM t, u WHERE t.id = ?", false},
		{"DELETE FROM t WHERE id IN (?)", false},
		{"INSERT INTO t (id) VALUES (?)", false},
		{"SELECT c FROM t WHERE id = ?", false},
		{"UPDAT", false},
	} {
		if got := parsePointWrite(c.q) != nil; got != c.want {
			t.Errorf("parsePointWrite(%q) = %v, want %v", c.q, got, c.want)
		}
	}
}

func TestParseRangeScan(t *testing.T) {
	for _, c := range []struct {
		q    string
		want bool
	}{
		{"SELECT c FROM sbtest1 WHERE id BETWEEN ? AND ?", true},
		{"SELECT id FROM lag_markers WHERE id > ? ORDER BY id LIMIT 10000", true},
		{"SELECT * FROM t WHERE ? < id AND id <= ? ORDER BY id ASC LIMIT 5, 10", true},
		{"SELECT x.c FROM bench.t AS x WHERE (x.id >= ?)", true},
		{"SELECT c FROM t WHERE id > ? AND id > ?", false}, // two lower bounds
		{"SELECT c FROM t WHERE id > ? AND k < ?", false},  // two columns
		{"SELECT c FROM t WHERE id > ? ORDER BY id DESC", false},
		{"SELECT c FROM t WHERE id > ? ORDER BY c", false},
		{"SELECT c AS id FROM t WHERE id > ? ORDER BY id", false}, // ORDER BY names the alias
		{"SELECT c FROM t WHERE id > ? LIMIT ?", false},
		{"SELECT c FROM t WHERE id > 5", false},
		{"SELECT c FROM t WHERE id NOT BETWEEN ? AND ?", false},
		{"SELECT c FROM t WHERE id <> ?", false},
		{"SELECT c FROM t WHERE id > ? OR id < ?", false},
		{"SELECT c FROM t WHERE id > ? FOR UPDATE", false},
		{"SELECT DISTINCT c FROM t WHERE id > ?", false},
		{"SELECT SUM(k) FROM t WHERE id BETWEEN ? AND ?", false},
	} {
		if got := parseRangeScan(c.q) != nil; got != c.want {
			t.Errorf("parseRangeScan(%q) = %v, want %v", c.q, got, c.want)
		}
	}
}

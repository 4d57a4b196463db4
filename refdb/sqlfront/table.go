package sqlfront

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/dolthub/go-mysql-server/sql"
	"github.com/dolthub/go-mysql-server/sql/planbuilder"
	"github.com/dolthub/go-mysql-server/sql/types"
	"github.com/dolthub/vitess/go/mysql"

	"github.com/aurorabench/aurorabench/refdb/engine"
)

// tableMeta is a table definition turned into go-mysql-server terms; built once per version.
type tableMeta struct {
	def     *engine.TableDef
	sch     sql.PrimaryKeySchema
	codecs  []colCodec
	pk      []int // ordinals of the primary key; a table without one gets a hidden row id
	indexes []*indexMeta
	colling sql.CollationID
}

type indexMeta struct {
	def    engine.IndexDef
	cols   []int
	prefix []uint16
}

func buildMeta(def *engine.TableDef) (*tableMeta, error) {
	m := &tableMeta{def: def, colling: sql.Collation_Default}
	if def.Collation != "" {
		if c, err := sql.ParseCollation("", def.Collation, false); err == nil {
			m.colling = c
		}
	}
	ord := map[string]int{}
	for i, cd := range def.Columns {
		typ, err := planbuilder.ParseColumnTypeString(cd.Type)
		if err != nil {
			return nil, fmt.Errorf("table %s column %s type %q: %w", def.Name, cd.Name, cd.Type, err)
		}
		codec, err := newCodec(typ)
		if err != nil {
			return nil, err
		}
		col := &sql.Column{Name: cd.Name, Type: typ, Nullable: cd.Nullable, Source: def.Name, DatabaseSource: def.DB,
			AutoIncrement: cd.AutoIncrement, Comment: cd.Comment}
		if cd.AutoIncrement {
			col.Extra = "auto_increment"
		}
		if cd.Default != nil {
			col.Default = sql.NewUnresolvedColumnDefaultValue(*cd.Default)
		}
		if cd.Generated != nil {
			col.Generated = sql.NewUnresolvedColumnDefaultValue(*cd.Generated)
		}
		if cd.OnUpdate != nil {
			col.OnUpdate = sql.NewUnresolvedColumnDefaultValue(*cd.OnUpdate)
		}
		m.sch.Schema = append(m.sch.Schema, col)
		m.codecs = append(m.codecs, codec)
		ord[strings.ToLower(cd.Name)] = i
	}
	for _, name := range def.PK {
		i, ok := ord[strings.ToLower(name)]
		if !ok {
			return nil, fmt.Errorf("table %s: primary key column %s missing", def.Name, name)
		}
		m.pk = append(m.pk, i)
		m.sch.Schema[i].PrimaryKey = true
	}
	m.sch.PkOrdinals = append([]int(nil), m.pk...)
	for _, id := range def.Indexes {
		im := &indexMeta{def: id}
		for j, c := range id.Columns {
			i, ok := ord[strings.ToLower(c)]
			if !ok {
				return nil, fmt.Errorf("table %s index %s: column %s missing", def.Name, id.Name, c)
			}
			im.cols = append(im.cols, i)
			var p uint16
			if j < len(id.Prefix) {
				p = id.Prefix[j]
			}
			im.prefix = append(im.prefix, p)
		}
		m.indexes = append(m.indexes, im)
	}
	return m, nil
}

// pkTuple encodes the primary key of a normalized row. Keyless tables use a hidden row id
// kept as the last element of the key (rowID).
func (m *tableMeta) pkTuple(norm sql.Row) ([]byte, error) {
	var b []byte
	var err error
	for _, i := range m.pk {
		if b, err = m.codecs[i].appendKey(b, norm[i], 0); err != nil {
			return nil, err
		}
	}
	return b, nil
}

func (m *tableMeta) pkKey(tuple []byte) []byte {
	return append(engine.IndexPrefix(m.def.DataID, 0), tuple...)
}

// indexTuple encodes the columns of index im of a normalized row.
func (m *tableMeta) indexTuple(im *indexMeta, norm sql.Row) ([]byte, bool, error) {
	var b []byte
	var err error
	hasNull := false
	for j, i := range im.cols {
		if norm[i] == nil {
			hasNull = true
		}
		if b, err = m.codecs[i].appendKey(b, norm[i], im.prefix[j]); err != nil {
			return nil, false, err
		}
	}
	return b, hasNull, nil
}

func (m *tableMeta) indexKey(im *indexMeta, idxTuple, pkTuple []byte) []byte {
	k := engine.IndexPrefix(m.def.DataID, im.def.ID)
	k = append(k, idxTuple...)
	return append(k, pkTuple...)
}

func (m *tableMeta) normalize(ctx *sql.Context, row sql.Row) (sql.Row, error) {
	if len(row) != len(m.codecs) {
		return nil, fmt.Errorf("row has %d values, table %s has %d columns", len(row), m.def.Name, len(m.codecs))
	}
	norm := make(sql.Row, len(row))
	for i, c := range m.codecs {
		v, err := c.normalize(ctx, row[i])
		if err != nil {
			return nil, err
		}
		norm[i] = v
	}
	return norm, nil
}

// Table is a refdb table as go-mysql-server sees it for one statement.
type Table struct {
	db     *Database
	m      *tableMeta
	lookup *sql.IndexLookup
}

var (
	_ sql.Table                 = (*Table)(nil)
	_ sql.IndexAddressableTable = (*Table)(nil)
	_ sql.IndexedTable          = (*Table)(nil)
	_ sql.InsertableTable       = (*Table)(nil)
	_ sql.UpdatableTable        = (*Table)(nil)
	_ sql.DeletableTable        = (*Table)(nil)
	_ sql.ReplaceableTable      = (*Table)(nil)
	_ sql.TruncateableTable     = (*Table)(nil)
	_ sql.AutoIncrementTable    = (*Table)(nil)
	_ sql.IndexAlterableTable   = (*Table)(nil)
	_ sql.PrimaryKeyTable       = (*Table)(nil)
	_ sql.CommentedTable        = (*Table)(nil)
)

func (t *Table) Name() string                           { return t.m.def.Name }
func (t *Table) String() string                         { return t.m.def.Name }
func (t *Table) Schema() sql.Schema                     { return t.m.sch.Schema }
func (t *Table) PrimaryKeySchema() sql.PrimaryKeySchema { return t.m.sch }
func (t *Table) Collation() sql.CollationID             { return t.m.colling }
func (t *Table) Comment() string                        { return t.m.def.Comment }

// PreciseMatch is false: index scans may return a superset of a lookup's ranges (bounds are
// widened where a value does not convert exactly, and locking reads re-read rows at their
// latest version), so the engine keeps evaluating the filters.
func (t *Table) PreciseMatch() bool { return false }

type partition struct{}

func (partition) Key() []byte { return []byte("p") }

type partitionIter struct{ done bool }

func (p *partitionIter) Next(*sql.Context) (sql.Partition, error) {
	if p.done {
		return nil, io.EOF
	}
	p.done = true
	return partition{}, nil
}
func (p *partitionIter) Close(*sql.Context) error { return nil }

// Partitions implements sql.Table: one partition, the whole primary index in key order.
func (t *Table) Partitions(*sql.Context) (sql.PartitionIter, error) { return &partitionIter{}, nil }

// LookupPartitions implements sql.IndexedTable.
func (t *Table) LookupPartitions(ctx *sql.Context, l sql.IndexLookup) (sql.PartitionIter, error) {
	return &partitionIter{}, nil
}

// IndexedAccess implements sql.IndexAddressable.
func (t *Table) IndexedAccess(ctx *sql.Context, l sql.IndexLookup) sql.IndexedTable {
	return &Table{db: t.db, m: t.m, lookup: &l}
}

// GetIndexes implements sql.IndexAddressable.
func (t *Table) GetIndexes(ctx *sql.Context) ([]sql.Index, error) {
	var out []sql.Index
	if len(t.m.pk) > 0 {
		out = append(out, &Index{t: t.m, db: t.db.name, primary: true})
	}
	for _, im := range t.m.indexes {
		out = append(out, &Index{t: t.m, db: t.db.name, im: im})
	}
	return out, nil
}

// PartitionRows implements sql.Table.
func (t *Table) PartitionRows(ctx *sql.Context, _ sql.Partition) (sql.RowIter, error) {
	tx, err := current(ctx)
	if err != nil {
		return nil, err
	}
	it := &rowIter{t: t, txn: tx.engineTxn(), locking: lockingRead(ctx)}
	if t.lookup == nil || t.lookup.Index == nil {
		p := engine.IndexPrefix(t.m.def.DataID, 0)
		it.spans = []span{{lo: p, hi: engine.PrefixEnd(p)}}
		return it, nil
	}
	idx, ok := t.lookup.Index.(*Index)
	if !ok {
		return nil, fmt.Errorf("lookup on foreign index %T", t.lookup.Index)
	}
	it.idx = idx.im
	if t.lookup.IsEmptyRange {
		return it, nil
	}
	ranges, ok := t.lookup.Ranges.(sql.MySQLRangeCollection)
	if !ok {
		return nil, fmt.Errorf("unsupported range collection %T", t.lookup.Ranges)
	}
	it.spans, err = t.spans(ctx, idx, ranges)
	if err != nil {
		return nil, err
	}
	if idx.Order() == sql.IndexOrderNone {
		return &collatedIter{src: it, cols: idx.cols(), sch: t.m.sch.Schema}, nil
	}
	return it, nil
}

// collatedIter returns the rows of a lookup on an index whose byte order is not
// go-mysql-server's comparison order (see Index.Order) sorted in that comparison order.
// go-mysql-server drops the Sort of `... WHERE s > 'a' ORDER BY s` when the lookup's index
// starts with s, whatever the index says of its order, so the lookup itself must come in the
// order the Sort would have made: a case-insensitive key is stored folded to lower case
// ('_' and '{' then sort around the letters, unlike in utf8mb4_0900_ai_ci), a prefix index
// orders by the prefix alone. The rows are held in memory, as the Sort would have held them.
type collatedIter struct {
	src  sql.RowIter
	cols []int
	sch  sql.Schema
	rows []sql.Row
	next int
	read bool
}

func (c *collatedIter) Next(ctx *sql.Context) (sql.Row, error) {
	if !c.read {
		c.read = true
		for {
			row, err := c.src.Next(ctx)
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, err
			}
			c.rows = append(c.rows, row)
		}
		var cmpErr error
		slices.SortStableFunc(c.rows, func(a, b sql.Row) int {
			for _, i := range c.cols {
				switch x, y := a[i], b[i]; {
				case x == nil && y == nil:
					continue
				case x == nil:
					return -1
				case y == nil:
					return 1
				}
				n, err := c.sch[i].Type.Compare(ctx, a[i], b[i])
				if err != nil && cmpErr == nil {
					cmpErr = err
				}
				if n != 0 {
					return n
				}
			}
			return 0
		})
		if cmpErr != nil {
			return nil, cmpErr
		}
	}
	if c.next >= len(c.rows) {
		return nil, io.EOF
	}
	row := c.rows[c.next]
	c.rows[c.next] = nil
	c.next++
	return row, nil
}

func (c *collatedIter) Close(ctx *sql.Context) error { return c.src.Close(ctx) }

// lockingRead reports whether reads of the current statement are InnoDB locking reads: the
// reads of UPDATE, DELETE, INSERT ... SELECT, REPLACE and SELECT ... FOR UPDATE / FOR SHARE.
// They lock each row and see its latest committed version. (Shared locks are taken as
// exclusive ones: simpler, and only stricter.)
func lockingRead(ctx *sql.Context) bool {
	q := ctx.Query()
	kw := firstKeyword(q)
	switch kw {
	case "UPDATE", "DELETE", "INSERT", "REPLACE":
		return true
	case "SELECT", "WITH", "(":
		u := strings.ToUpper(q)
		return strings.Contains(u, "FOR UPDATE") || strings.Contains(u, "LOCK IN SHARE MODE") || strings.Contains(u, "FOR SHARE")
	}
	return false
}

// firstKeyword returns the statement's first keyword, upper-cased, skipping blanks and comments.
func firstKeyword(q string) string {
	for {
		q = strings.TrimLeft(q, " \t\r\n")
		switch {
		case strings.HasPrefix(q, "/*"):
			end := strings.Index(q, "*/")
			if end < 0 {
				return ""
			}
			q = q[end+2:]
			continue
		case strings.HasPrefix(q, "--") || strings.HasPrefix(q, "#"):
			end := strings.IndexByte(q, '\n')
			if end < 0 {
				return ""
			}
			q = q[end+1:]
			continue
		case strings.HasPrefix(q, "("):
			return "("
		}
		end := strings.IndexAny(q, " \t\r\n(/")
		if end < 0 {
			end = len(q)
		}
		return strings.ToUpper(q[:end])
	}
}

// spans turns a lookup's ranges into key intervals of the index: equal leading columns become
// a tuple prefix, the first non-equal column bounds the interval, later columns are left to
// the filters. Exclusive bounds are widened to inclusive ones (the filters drop the extra
// rows), which also keeps the bounds right when a value converts inexactly.
//
// A range that fixes every primary-key column is a point: one key, read through the version
// cache (Txn.Get) instead of a storage scan. sysbench's point selects and its UPDATE/DELETE
// ... WHERE id=? are all such ranges.
func (t *Table) spans(ctx *sql.Context, idx *Index, ranges sql.MySQLRangeCollection) ([]span, error) {
	var cols []int
	var prefixes []uint16
	var base []byte
	if idx.primary {
		cols = t.m.pk
		prefixes = make([]uint16, len(cols))
		base = engine.IndexPrefix(t.m.def.DataID, 0)
	} else {
		cols, prefixes = idx.im.cols, idx.im.prefix
		base = engine.IndexPrefix(t.m.def.DataID, idx.im.def.ID)
	}
	var out []span
	for _, rng := range ranges {
		prefix := append([]byte(nil), base...)
		var lo, hi []byte
		bounded, empty := false, false
		fixed := 0 // leading columns fixed to one value
		for i, ce := range rng {
			if i >= len(cols) {
				break
			}
			codec := t.m.codecs[cols[i]]
			if v, isPoint := pointOf(ctx, ce); isPoint && prefixes[i] == 0 {
				enc, ok := encodeBound(ctx, codec, v)
				if !ok {
					break
				}
				prefix = append(prefix, enc...)
				fixed++
				continue
			}
			bounded = true
			switch c := ce.LowerBound.(type) {
			case sql.AboveAll:
				empty = true
			case sql.AboveNull:
				lo = append(append([]byte(nil), prefix...), 0x02)
			case sql.Below:
				lo = boundKey(ctx, prefix, codec, c.Key, prefixes[i], false)
			case sql.Above:
				lo = boundKey(ctx, prefix, codec, c.Key, prefixes[i], false)
			default:
				lo = append([]byte(nil), prefix...)
			}
			switch c := ce.UpperBound.(type) {
			case sql.BelowNull:
				empty = true
			case sql.AboveNull:
				hi = append(append([]byte(nil), prefix...), 0x02)
			case sql.Below:
				hi = boundKey(ctx, prefix, codec, c.Key, prefixes[i], true)
			case sql.Above:
				hi = boundKey(ctx, prefix, codec, c.Key, prefixes[i], true)
			default:
				hi = engine.PrefixEnd(prefix)
			}
			break
		}
		if empty {
			continue
		}
		if !bounded && idx.primary && fixed == len(cols) && pointKeyable(rng, cols) {
			// The tuple encoding is prefix-free, so the only key under prefix is prefix.
			out = append(out, span{lo: prefix, point: true})
			continue
		}
		if !bounded {
			lo, hi = prefix, engine.PrefixEnd(prefix)
		}
		out = append(out, span{lo: lo, hi: hi})
	}
	return out, nil
}

// pointKeyable reports whether a range fixing every primary-key column may be read as one
// key: a NULL can never be in a primary key, so a NULL point stays a (empty) scan.
func pointKeyable(rng sql.MySQLRange, cols []int) bool {
	for i := range cols {
		if _, isNull := rng[i].LowerBound.(sql.BelowNull); isNull {
			return false
		}
	}
	return true
}

// span is a key interval [lo, hi) of an index, or (point) the single key lo of the primary
// index.
type span struct {
	lo, hi []byte
	point  bool
}

// pointOf reports whether ce is a single value (or NULL).
func pointOf(ctx *sql.Context, ce sql.MySQLRangeColumnExpr) (any, bool) {
	if _, ok := ce.LowerBound.(sql.BelowNull); ok {
		if _, ok := ce.UpperBound.(sql.AboveNull); ok {
			return nil, true
		}
		return nil, false
	}
	lo, ok1 := ce.LowerBound.(sql.Below)
	hi, ok2 := ce.UpperBound.(sql.Above)
	if !ok1 || !ok2 {
		return nil, false
	}
	cmp, err := ce.Typ.Compare(ctx, lo.Key, hi.Key)
	if err != nil || cmp != 0 {
		return nil, false
	}
	return lo.Key, true
}

func encodeBound(ctx *sql.Context, codec colCodec, v any) ([]byte, bool) {
	n, err := codec.normalize(ctx, v)
	if err != nil {
		return nil, false
	}
	enc, err := codec.appendKey(nil, n, 0)
	return enc, err == nil
}

// boundKey is the interval bound for one value: the start of its keys, or (upper) the end.
// A value that does not encode leaves that side unbounded within prefix.
func boundKey(ctx *sql.Context, prefix []byte, codec colCodec, v any, plen uint16, upper bool) []byte {
	n, err := codec.normalize(ctx, v)
	var enc []byte
	if err == nil {
		enc, err = codec.appendKey(nil, n, plen)
	}
	if err != nil {
		if upper {
			return engine.PrefixEnd(prefix)
		}
		return append([]byte(nil), prefix...)
	}
	k := append(append([]byte(nil), prefix...), enc...)
	if plen > 0 && codec.kind == kString {
		// A prefix-truncated value ends early: drop its terminator so longer strings match.
		k = k[:len(k)-2]
	}
	if upper {
		return engine.PrefixEnd(k)
	}
	return k
}

// rowIter reads rows of a table through its primary index or a secondary index.
type rowIter struct {
	t       *Table
	txn     *engine.Txn
	locking bool
	idx     *indexMeta // nil: primary index
	spans   []span
	si      int
	it      *engine.Iterator
	seen    map[string]bool // secondary lookups over several spans: each row once
}

func (r *rowIter) Next(ctx *sql.Context) (sql.Row, error) {
	for {
		if r.it == nil {
			if r.si >= len(r.spans) {
				return nil, io.EOF
			}
			sp := r.spans[r.si]
			r.si++
			if sp.point {
				row, found, err := r.point(ctx, sp.lo)
				if err != nil {
					return nil, err
				}
				if found {
					return row, nil
				}
				continue
			}
			r.it = r.txn.Scan(ctx, sp.lo, sp.hi, r.locking)
		}
		kv, ok := r.it.Next()
		if !ok {
			if err := r.it.Err(); err != nil {
				return nil, toSQLError(fmt.Errorf("scan %s: %w", r.t.m.def.Name, err))
			}
			r.it = nil
			continue
		}
		pkKey, val := kv.Key, kv.Value
		if r.idx != nil {
			pkKey = r.t.m.pkKey(kv.Value)
			if len(r.spans) > 1 {
				if r.seen == nil {
					r.seen = map[string]bool{}
				}
				if r.seen[string(pkKey)] {
					continue
				}
				r.seen[string(pkKey)] = true
			}
		}
		var found bool
		var err error
		switch {
		case r.locking:
			val, found, err = r.txn.GetForUpdate(ctx, pkKey)
		case r.idx != nil:
			val, found, err = r.txn.Get(ctx, pkKey)
		default:
			found = true
		}
		if err != nil {
			return nil, toSQLError(err)
		}
		if !found {
			continue // deleted meanwhile, or an index entry without its row
		}
		row, err := decodeRow(r.t.m.codecs, val)
		if err != nil {
			return nil, fmt.Errorf("table %s key %x: %w", r.t.m.def.Name, pkKey, err)
		}
		return row, nil
	}
}

func (r *rowIter) Close(*sql.Context) error { return nil }

// point reads the row at primary key key: a locking read locks it and reads its latest
// version, a plain read reads the snapshot, both through the version cache. A locking read
// of a missing key keeps the key locked until the transaction ends, so a concurrent INSERT
// of it waits, as behind InnoDB's gap lock at REPEATABLE READ (a scan that found nothing
// locked nothing).
func (r *rowIter) point(ctx *sql.Context, key []byte) (sql.Row, bool, error) {
	var val []byte
	var found bool
	var err error
	if r.locking {
		val, found, err = r.txn.GetForUpdate(ctx, key)
	} else {
		val, found, err = r.txn.Get(ctx, key)
	}
	if err != nil || !found {
		return nil, false, toSQLError(err)
	}
	row, err := decodeRow(r.t.m.codecs, val)
	if err != nil {
		return nil, false, fmt.Errorf("table %s key %x: %w", r.t.m.def.Name, key, err)
	}
	return row, true, nil
}

// Index is a primary or secondary index as go-mysql-server sees it.
type Index struct {
	t       *tableMeta
	db      string
	primary bool
	im      *indexMeta
}

var _ sql.Index = (*Index)(nil)

func (i *Index) ID() string {
	if i.primary {
		return "PRIMARY"
	}
	return i.im.def.Name
}
func (i *Index) Database() string { return i.db }
func (i *Index) Table() string    { return i.t.def.Name }
func (i *Index) cols() []int {
	if i.primary {
		return i.t.pk
	}
	return i.im.cols
}
func (i *Index) Expressions() []string {
	var out []string
	for _, c := range i.cols() {
		out = append(out, strings.ToLower(i.t.def.Name)+"."+strings.ToLower(i.t.def.Columns[c].Name))
	}
	return out
}
func (i *Index) IsUnique() bool                             { return i.primary || i.im.def.Unique }
func (i *Index) IsSpatial() bool                            { return false }
func (i *Index) IsFullText() bool                           { return false }
func (i *Index) IsVector() bool                             { return false }
func (i *Index) IsGenerated() bool                          { return false }
func (i *Index) IndexType() string                          { return "BTREE" }
func (i *Index) CanSupport(*sql.Context, ...sql.Range) bool { return true }
func (i *Index) CanSupportOrderBy(sql.Expression) bool      { return false }

// Order implements sql.OrderedIndex. Reads come in ascending key order, and that is the order
// go-mysql-server compares values in only when every column of the index is an integer: a
// case-insensitive string is stored folded to lower case and compared in byte order, a prefix
// index orders by the prefix alone, a DECIMAL by its float64 value first. For an index that
// says it is ordered go-mysql-server drops the Sort of an ORDER BY on its columns and may
// merge-join on it, both of which need its own comparison order (a merge join of two
// case-insensitive string keys found no match for '{').
func (i *Index) Order() sql.IndexOrder {
	for j, c := range i.cols() {
		if k := i.t.codecs[c].kind; k != kInt && k != kUint {
			return sql.IndexOrderNone
		}
		if !i.primary && i.im.prefix[j] > 0 {
			return sql.IndexOrderNone
		}
	}
	return sql.IndexOrderAsc
}

// Reversible implements sql.OrderedIndex. Reads only go forward (the engine's iterators do),
// and saying so makes go-mysql-server keep its Sort for ORDER BY ... DESC: an index that does
// not implement OrderedIndex counts as reversible, and go-mysql-server then dropped the Sort
// and asked for a reverse read that nothing performed, so `ORDER BY id DESC` came back in
// ascending order.
func (i *Index) Reversible() bool { return false }
func (i *Index) Comment() string {
	if i.primary {
		return ""
	}
	return i.im.def.Comment
}
func (i *Index) PrefixLengths() []uint16 {
	if i.primary {
		return nil
	}
	for _, p := range i.im.prefix {
		if p > 0 {
			return i.im.prefix
		}
	}
	return nil
}
func (i *Index) ColumnExpressionTypes() []sql.ColumnExpressionType {
	var out []sql.ColumnExpressionType
	exprs := i.Expressions()
	for j, c := range i.cols() {
		out = append(out, sql.ColumnExpressionType{Expression: exprs[j], Type: i.t.sch.Schema[c].Type})
	}
	return out
}

// --- writes ---

type editor struct {
	t  *Table
	sp int
	tx *Transaction
}

func (t *Table) editor(ctx *sql.Context) *editor { return &editor{t: t} }

func (t *Table) Inserter(ctx *sql.Context) sql.RowInserter { return t.editor(ctx) }
func (t *Table) Updater(ctx *sql.Context) sql.RowUpdater   { return t.editor(ctx) }
func (t *Table) Deleter(ctx *sql.Context) sql.RowDeleter   { return t.editor(ctx) }
func (t *Table) Replacer(ctx *sql.Context) sql.RowReplacer { return t.editor(ctx) }

// begin returns the engine transaction for a write and registers the table's commit check.
func (e *editor) begin(ctx *sql.Context) (*engine.Txn, error) {
	tx, err := current(ctx)
	if err != nil {
		return nil, err
	}
	if tx.readOnly {
		return nil, sql.ErrReadOnlyTransaction.New()
	}
	if e.t.db.fe.ReadOnly() {
		return nil, sqlErr(mysql.EROptionPreventsStatement, "HY000", "The MySQL server is running with the --read-only option so it cannot execute this statement")
	}
	txn := tx.engineTxn()
	if err := tx.touch(txn, e.t.m.def); err != nil {
		return nil, err
	}
	e.tx = tx
	return txn, nil
}

// StatementBegin marks the statement start so a failed statement is undone alone.
func (e *editor) StatementBegin(ctx *sql.Context) {
	if tx, err := current(ctx); err == nil {
		e.sp = tx.engineTxn().Savepoint()
	}
}

// DiscardChanges undoes the statement's writes (row locks stay, as in InnoDB).
func (e *editor) DiscardChanges(ctx *sql.Context, _ error) error {
	if tx, err := current(ctx); err == nil {
		tx.engineTxn().RollbackTo(e.sp)
	}
	return nil
}

func (e *editor) StatementComplete(*sql.Context) error { return nil }
func (e *editor) Close(*sql.Context) error             { return nil }

func (e *editor) Insert(ctx *sql.Context, row sql.Row) error {
	txn, err := e.begin(ctx)
	if err != nil {
		return err
	}
	return toSQLError(e.t.insert(ctx, txn, row))
}

func (e *editor) Update(ctx *sql.Context, old, new sql.Row) error {
	txn, err := e.begin(ctx)
	if err != nil {
		return err
	}
	return toSQLError(e.t.update(ctx, txn, old, new))
}

func (e *editor) Delete(ctx *sql.Context, row sql.Row) error {
	txn, err := e.begin(ctx)
	if err != nil {
		return err
	}
	return toSQLError(e.t.delete(ctx, txn, row))
}

func (t *Table) keylessTuple(ctx *sql.Context, norm sql.Row) ([]byte, error) {
	// A table without a primary key stores rows under (all columns, sequence) so duplicates
	// can coexist.
	var b []byte
	var err error
	for i, c := range t.m.codecs {
		if b, err = c.appendKey(b, norm[i], 0); err != nil {
			return nil, err
		}
	}
	return b, nil
}

func (t *Table) insert(ctx *sql.Context, txn *engine.Txn, row sql.Row) error {
	val, norm, err := encodeRow(ctx, t.m.codecs, row)
	if err != nil {
		return err
	}
	var pk []byte
	if len(t.m.pk) == 0 {
		base, err := t.keylessTuple(ctx, norm)
		if err != nil {
			return err
		}
		seq, err := t.db.fe.engine().NextAutoIncrement(ctx, t.m.def.ID|1<<31, 0)
		if err != nil {
			return err
		}
		pk = engine.AppendUint(base, seq)
	} else if pk, err = t.m.pkTuple(norm); err != nil {
		return err
	}
	key := t.m.pkKey(pk)
	if len(t.m.pk) > 0 {
		cur, found, err := txn.GetForUpdate(ctx, key)
		if err != nil {
			return err
		}
		if found {
			existing, derr := decodeRow(t.m.codecs, cur)
			if derr != nil {
				return derr
			}
			return sql.NewUniqueKeyErr(t.formatKey(norm, t.m.pk), true, existing)
		}
	}
	for _, im := range t.m.indexes {
		if err := t.checkUnique(ctx, txn, im, norm, pk); err != nil {
			return err
		}
	}
	if err := txn.Put(ctx, key, val); err != nil {
		return err
	}
	for _, im := range t.m.indexes {
		it, _, err := t.m.indexTuple(im, norm)
		if err != nil {
			return err
		}
		if err := txn.Put(ctx, t.m.indexKey(im, it, pk), pk); err != nil {
			return err
		}
	}
	return nil
}

func (t *Table) formatKey(norm sql.Row, cols []int) string {
	parts := make([]string, len(cols))
	for i, c := range cols {
		parts[i] = fmt.Sprint(norm[c])
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// checkUnique fails if another live row has the same values in unique index im. The lock on
// the value serializes concurrent inserts of it; entries are verified against their rows so a
// leftover entry never causes a false duplicate.
func (t *Table) checkUnique(ctx *sql.Context, txn *engine.Txn, im *indexMeta, norm sql.Row, pk []byte) error {
	if !im.def.Unique {
		return nil
	}
	it, hasNull, err := t.m.indexTuple(im, norm)
	if err != nil || hasNull {
		return err // NULLs never collide in a unique index
	}
	prefix := append(engine.IndexPrefix(t.m.def.DataID, im.def.ID), it...)
	if err := txn.Lock(ctx, append([]byte("uniq:"), prefix...)); err != nil {
		return err
	}
	scan := txn.Scan(ctx, prefix, engine.PrefixEnd(prefix), true)
	for kv, ok := scan.Next(); ok; kv, ok = scan.Next() {
		if bytes.Equal(kv.Value, pk) {
			continue
		}
		cur, found, err := txn.GetLatest(ctx, t.m.pkKey(kv.Value))
		if err != nil {
			return err
		}
		if !found {
			continue
		}
		existing, err := decodeRow(t.m.codecs, cur)
		if err != nil {
			return err
		}
		en, err := t.m.normalize(ctx, existing)
		if err != nil {
			return err
		}
		et, _, err := t.m.indexTuple(im, en)
		if err != nil {
			return err
		}
		if bytes.Equal(et, it) {
			return sql.NewUniqueKeyErr(t.formatKey(norm, im.cols), false, existing)
		}
	}
	return scan.Err()
}

// locate finds the stored row for a row go-mysql-server read, locked, with its key tuple.
func (t *Table) locate(ctx *sql.Context, txn *engine.Txn, norm sql.Row) (pk []byte, cur sql.Row, found bool, err error) {
	if len(t.m.pk) > 0 {
		if pk, err = t.m.pkTuple(norm); err != nil {
			return nil, nil, false, err
		}
		v, ok, err := txn.GetForUpdate(ctx, t.m.pkKey(pk))
		if err != nil || !ok {
			return pk, nil, false, err
		}
		cur, err = decodeRow(t.m.codecs, v)
		return pk, cur, err == nil, err
	}
	base, err := t.keylessTuple(ctx, norm)
	if err != nil {
		return nil, nil, false, err
	}
	prefix := t.m.pkKey(base)
	scan := txn.Scan(ctx, prefix, engine.PrefixEnd(prefix), true)
	for kv, ok := scan.Next(); ok; kv, ok = scan.Next() {
		v, ok, err := txn.GetForUpdate(ctx, kv.Key)
		if err != nil {
			return nil, nil, false, err
		}
		if !ok {
			continue
		}
		cur, err = decodeRow(t.m.codecs, v)
		return kv.Key[len(engine.IndexPrefix(t.m.def.DataID, 0)):], cur, err == nil, err
	}
	return nil, nil, false, scan.Err()
}

func (t *Table) delete(ctx *sql.Context, txn *engine.Txn, row sql.Row) error {
	norm, err := t.m.normalize(ctx, row)
	if err != nil {
		return err
	}
	pk, cur, found, err := t.locate(ctx, txn, norm)
	if err != nil {
		return err
	}
	if !found {
		return sql.ErrDeleteRowNotFound.New()
	}
	curNorm, err := t.m.normalize(ctx, cur)
	if err != nil {
		return err
	}
	if err := txn.Delete(ctx, t.m.pkKey(pk)); err != nil {
		return err
	}
	for _, im := range t.m.indexes {
		it, _, err := t.m.indexTuple(im, curNorm)
		if err != nil {
			return err
		}
		if err := txn.Delete(ctx, t.m.indexKey(im, it, pk)); err != nil {
			return err
		}
	}
	return nil
}

func (t *Table) update(ctx *sql.Context, txn *engine.Txn, old, new sql.Row) error {
	oldNorm, err := t.m.normalize(ctx, old)
	if err != nil {
		return err
	}
	pk, cur, found, err := t.locate(ctx, txn, oldNorm)
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("update of %s: row %s vanished", t.m.def.Name, t.formatKey(oldNorm, t.m.pk))
	}
	curNorm, err := t.m.normalize(ctx, cur)
	if err != nil {
		return err
	}
	val, newNorm, err := encodeRow(ctx, t.m.codecs, new)
	if err != nil {
		return err
	}
	newPK := pk
	if len(t.m.pk) == 0 {
		if err := t.delete(ctx, txn, cur); err != nil {
			return err
		}
		return t.insert(ctx, txn, new)
	}
	if newPK, err = t.m.pkTuple(newNorm); err != nil {
		return err
	}
	pkChanged := !bytes.Equal(newPK, pk)
	if pkChanged {
		v, exists, err := txn.GetForUpdate(ctx, t.m.pkKey(newPK))
		if err != nil {
			return err
		}
		if exists {
			existing, _ := decodeRow(t.m.codecs, v)
			return sql.NewUniqueKeyErr(t.formatKey(newNorm, t.m.pk), true, existing)
		}
		if err := txn.Delete(ctx, t.m.pkKey(pk)); err != nil {
			return err
		}
	}
	for _, im := range t.m.indexes {
		oldT, _, err := t.m.indexTuple(im, curNorm)
		if err != nil {
			return err
		}
		newT, _, err := t.m.indexTuple(im, newNorm)
		if err != nil {
			return err
		}
		if bytes.Equal(oldT, newT) && !pkChanged {
			continue
		}
		if !bytes.Equal(oldT, newT) {
			if err := t.checkUnique(ctx, txn, im, newNorm, newPK); err != nil {
				return err
			}
		}
		if err := txn.Delete(ctx, t.m.indexKey(im, oldT, pk)); err != nil {
			return err
		}
		if err := txn.Put(ctx, t.m.indexKey(im, newT, newPK), newPK); err != nil {
			return err
		}
	}
	return txn.Put(ctx, t.m.pkKey(newPK), val)
}

// Truncate implements sql.TruncateableTable. go-mysql-server also turns a DELETE without WHERE
// into a truncate: that one must stay transactional, so it deletes row by row.
func (t *Table) Truncate(ctx *sql.Context) (int, error) {
	if firstKeyword(ctx.Query()) == "DELETE" {
		e := t.editor(ctx)
		txn, err := e.begin(ctx)
		if err != nil {
			return 0, err
		}
		p := engine.IndexPrefix(t.m.def.DataID, 0)
		it := txn.Scan(ctx, p, engine.PrefixEnd(p), true)
		var rows []sql.Row
		for kv, ok := it.Next(); ok; kv, ok = it.Next() {
			r, err := decodeRow(t.m.codecs, kv.Value)
			if err != nil {
				return 0, err
			}
			rows = append(rows, r)
		}
		if err := it.Err(); err != nil {
			return 0, err
		}
		n := 0
		for _, r := range rows {
			if err := t.delete(ctx, txn, r); err != nil {
				if sql.ErrDeleteRowNotFound.Is(err) {
					continue
				}
				return n, toSQLError(err)
			}
			n++
		}
		return n, nil
	}
	if t.db.fe.ReadOnly() {
		return 0, errReadOnly()
	}
	_, err := t.db.fe.engine().AlterTable(ctx, t.db.name, t.m.def.Name, true, func(*engine.Txn, *engine.TableDef, *engine.TableDef) error { return nil })
	if err != nil {
		return 0, ddlError(err)
	}
	return 0, nil
}

// --- auto increment ---

func (t *Table) PeekNextAutoIncrementValue(ctx *sql.Context) (uint64, error) {
	return t.db.fe.engine().PeekAutoIncrement(t.m.def.ID), nil
}

// GetNextAutoIncrementValue may reserve a block of values, a commit: on a reader it answers
// 1290 like every other write, before go-mysql-server's insert reaches the table's editor.
func (t *Table) GetNextAutoIncrementValue(ctx *sql.Context, insertVal interface{}) (uint64, error) {
	if t.db.fe.ReadOnly() {
		return 0, errReadOnly()
	}
	var explicit uint64
	if insertVal != nil {
		v, _, err := types.Uint64.Convert(ctx, insertVal)
		if err != nil {
			return 0, err
		}
		explicit = v.(uint64)
	}
	n, err := t.db.fe.engine().NextAutoIncrement(ctx, t.m.def.ID, explicit)
	return n, toSQLError(err)
}

func (t *Table) AutoIncrementSetter(ctx *sql.Context) sql.AutoIncrementSetter {
	return &autoSetter{t: t}
}

type autoSetter struct{ t *Table }

func (a *autoSetter) SetAutoIncrementValue(ctx *sql.Context, v uint64) error {
	if a.t.db.fe.ReadOnly() {
		return errReadOnly()
	}
	return toSQLError(a.t.db.fe.engine().SetAutoIncrement(ctx, a.t.m.def.ID, v))
}
func (a *autoSetter) AcquireAutoIncrementLock(*sql.Context) (func(), error) { return func() {}, nil }
func (a *autoSetter) Close(*sql.Context) error                              { return nil }

// --- index DDL ---

// CreateIndex implements sql.IndexAlterableTable: it adds the index and fills it from the
// table's rows under the table's exclusive metadata lock.
func (t *Table) CreateIndex(ctx *sql.Context, def sql.IndexDef) error {
	if def.IsFullText() || def.IsSpatial() || def.IsVector() {
		return sql.ErrUnsupportedFeature.New("FULLTEXT, SPATIAL and VECTOR indexes")
	}
	if def.IsPrimary() {
		return sql.ErrUnsupportedFeature.New("adding a primary key to an existing table")
	}
	_, err := t.db.fe.engine().AlterTable(ctx, t.db.name, t.m.def.Name, false, func(txn *engine.Txn, old, next *engine.TableDef) error {
		for _, ix := range next.Indexes {
			if strings.EqualFold(ix.Name, def.Name) {
				return sql.ErrDuplicateKey.New(def.Name)
			}
		}
		ix := engine.IndexDef{ID: next.NextIndexID, Name: def.Name, Unique: def.IsUnique(), Comment: def.Comment}
		next.NextIndexID++
		for _, c := range def.Columns {
			ix.Columns = append(ix.Columns, c.Name)
			ix.Prefix = append(ix.Prefix, uint16(c.Length))
		}
		next.Indexes = append(next.Indexes, ix)
		m, err := buildMeta(next)
		if err != nil {
			return err
		}
		im := m.indexes[len(m.indexes)-1]
		return backfill(ctx, txn, m, im)
	})
	return ddlError(err)
}

// backfill writes index im's entries for every row (the caller holds the table's DDL lock).
func backfill(ctx *sql.Context, txn *engine.Txn, m *tableMeta, im *indexMeta) error {
	p := engine.IndexPrefix(m.def.DataID, 0)
	it := txn.Scan(ctx, p, engine.PrefixEnd(p), false)
	seen := map[string]bool{}
	for kv, ok := it.Next(); ok; kv, ok = it.Next() {
		row, err := decodeRow(m.codecs, kv.Value)
		if err != nil {
			return err
		}
		norm, err := m.normalize(ctx, row)
		if err != nil {
			return err
		}
		tuple, hasNull, err := m.indexTuple(im, norm)
		if err != nil {
			return err
		}
		if im.def.Unique && !hasNull {
			if seen[string(tuple)] {
				return sql.NewUniqueKeyErr(fmt.Sprint(row), false, row)
			}
			seen[string(tuple)] = true
		}
		pk := kv.Key[len(p):]
		txn.PutOwned(m.indexKey(im, tuple, pk), pk)
	}
	return it.Err()
}

// DropIndex implements sql.IndexAlterableTable.
func (t *Table) DropIndex(ctx *sql.Context, name string) error {
	_, err := t.db.fe.engine().AlterTable(ctx, t.db.name, t.m.def.Name, false, func(txn *engine.Txn, old, next *engine.TableDef) error {
		for i, ix := range next.Indexes {
			if strings.EqualFold(ix.Name, name) {
				next.Indexes = append(next.Indexes[:i], next.Indexes[i+1:]...)
				p := engine.IndexPrefix(next.DataID, ix.ID)
				scan := txn.Scan(ctx, p, engine.PrefixEnd(p), false)
				for kv, ok := scan.Next(); ok; kv, ok = scan.Next() {
					txn.DeleteOwned(kv.Key)
				}
				return scan.Err()
			}
		}
		return sql.ErrIndexNotFound.New(name)
	})
	return ddlError(err)
}

// RenameIndex implements sql.IndexAlterableTable.
func (t *Table) RenameIndex(ctx *sql.Context, from, to string) error {
	_, err := t.db.fe.engine().AlterTable(ctx, t.db.name, t.m.def.Name, false, func(txn *engine.Txn, old, next *engine.TableDef) error {
		for i, ix := range next.Indexes {
			if strings.EqualFold(ix.Name, from) {
				next.Indexes[i].Name = to
				return nil
			}
		}
		return sql.ErrIndexNotFound.New(from)
	})
	return ddlError(err)
}

package sqlfront

import (
	"fmt"
	"strings"

	"github.com/dolthub/go-mysql-server/sql"

	"github.com/aurorabench/aurorabench/refdb/engine"
)

// Column DDL (sql.AlterableTable): ALTER TABLE … ADD / DROP / MODIFY / CHANGE / RENAME COLUMN.
//
// The new definition is committed through the volume like every catalog change, under the
// table's exclusive metadata lock (engine.AlterTable): no commit on the table runs meanwhile,
// and transactions that wrote it under the old definition fail at commit with 1412.
//
// Changes that leave the stored rows valid are metadata-only: renaming a column, changing
// its default or comment, and adding a nullable column without a default at the end (rows
// written before it decode it as NULL — a lazy default). Every other change rewrites the
// table: all rows are read at the latest committed state, converted, and written with their
// index entries under a fresh data id in the same transaction as the new definition; the old
// rows are deleted afterwards in the background. One transaction is bounded by the volume's
// in-flight LSN limit (65 536 writes), so a rewrite handles up to 65 536 / (1 + indexes)
// rows; a larger table fails the ALTER with an error and stays unchanged.

var _ sql.AlterableTable = (*Table)(nil)

// rowConverter turns a row of the old definition into a row of the new one.
type rowConverter func(ctx *sql.Context, old sql.Row) (sql.Row, error)

func findColumn(cols []engine.ColumnDef, name string) int {
	for i, c := range cols {
		if strings.EqualFold(c.Name, name) {
			return i
		}
	}
	return -1
}

// orderPos is where a column goes in cols (which no longer holds it): FIRST, AFTER x, or the
// end (dflt).
func orderPos(table string, cols []engine.ColumnDef, order *sql.ColumnOrder, dflt int) (int, error) {
	switch {
	case order == nil:
		return dflt, nil
	case order.First:
		return 0, nil
	case order.AfterColumn != "":
		i := findColumn(cols, order.AfterColumn)
		if i < 0 {
			return 0, sql.ErrTableColumnNotFound.New(table, order.AfterColumn)
		}
		return i + 1, nil
	}
	return dflt, nil
}

func checkColumn(col *sql.Column) error {
	if col.Generated != nil {
		return sql.ErrUnsupportedFeature.New("generated columns in ALTER TABLE on refdb")
	}
	if _, err := newCodec(col.Type); err != nil {
		return sql.ErrUnsupportedFeature.New(err.Error())
	}
	return nil
}

// AddColumn implements sql.AlterableTable.
func (t *Table) AddColumn(ctx *sql.Context, col *sql.Column, order *sql.ColumnOrder) error {
	if t.db.fe.ReadOnly() {
		return errReadOnly()
	}
	if err := checkColumn(col); err != nil {
		return err
	}
	if col.AutoIncrement {
		return sql.ErrUnsupportedFeature.New("ADD COLUMN … AUTO_INCREMENT on refdb")
	}
	var pos int
	return t.alter(ctx, func(next *engine.TableDef) (rowConverter, error) {
		if findColumn(next.Columns, col.Name) >= 0 {
			return nil, sql.ErrColumnExists.New(col.Name)
		}
		var err error
		if pos, err = orderPos(next.Name, next.Columns, order, len(next.Columns)); err != nil {
			return nil, err
		}
		next.Columns = append(next.Columns[:pos], append([]engine.ColumnDef{columnDef(col)}, next.Columns[pos:]...)...)
		if pos == len(next.Columns)-1 && col.Nullable && col.Default == nil {
			return nil, nil // rows without the column read it as NULL
		}
		return func(ctx *sql.Context, old sql.Row) (sql.Row, error) {
			row := make(sql.Row, 0, len(old)+1)
			row = append(append(append(row, old[:pos]...), nil), old[pos:]...)
			v, err := columnDefault(ctx, col, row)
			if err != nil {
				return nil, err
			}
			row[pos] = v
			return row, nil
		}, nil
	})
}

// columnDefault is the value an existing row gets for a new column, as MySQL fills it: the
// default, or the type's zero value for a NOT NULL column without one.
func columnDefault(ctx *sql.Context, col *sql.Column, row sql.Row) (any, error) {
	var v any
	switch {
	case col.Default != nil:
		d, err := col.Default.Eval(ctx, row)
		if err != nil {
			return nil, fmt.Errorf("default of column %s: %w", col.Name, err)
		}
		v = d
	case !col.Nullable:
		v = col.Type.Zero()
	}
	if v == nil {
		if !col.Nullable {
			return nil, sql.ErrInsertIntoNonNullableProvidedNull.New(col.Name)
		}
		return nil, nil
	}
	cv, _, err := col.Type.Convert(ctx, v)
	if err != nil {
		return nil, fmt.Errorf("default of column %s: %w", col.Name, err)
	}
	return cv, nil
}

// DropColumn implements sql.AlterableTable. The column leaves the primary key and the indexes
// holding it; an index left without columns is dropped.
func (t *Table) DropColumn(ctx *sql.Context, name string) error {
	if t.db.fe.ReadOnly() {
		return errReadOnly()
	}
	return t.alter(ctx, func(next *engine.TableDef) (rowConverter, error) {
		i := findColumn(next.Columns, name)
		if i < 0 {
			return nil, sql.ErrTableColumnNotFound.New(next.Name, name)
		}
		if len(next.Columns) == 1 {
			return nil, sqlErr(1090, "42000", "You can't delete all columns with ALTER TABLE; use DROP TABLE instead")
		}
		next.Columns = append(next.Columns[:i], next.Columns[i+1:]...)
		next.PK = removeName(next.PK, name)
		var idx []engine.IndexDef
		for _, ix := range next.Indexes {
			var cols []string
			var prefix []uint16
			for j, c := range ix.Columns {
				if strings.EqualFold(c, name) {
					continue
				}
				cols = append(cols, c)
				if j < len(ix.Prefix) {
					prefix = append(prefix, ix.Prefix[j])
				}
			}
			if len(cols) == 0 {
				continue
			}
			ix.Columns, ix.Prefix = cols, prefix
			idx = append(idx, ix)
		}
		next.Indexes = idx
		return func(_ *sql.Context, old sql.Row) (sql.Row, error) {
			row := make(sql.Row, 0, len(old)-1)
			return append(append(row, old[:i]...), old[i+1:]...), nil
		}, nil
	})
}

func removeName(names []string, name string) []string {
	out := names[:0:0]
	for _, n := range names {
		if !strings.EqualFold(n, name) {
			out = append(out, n)
		}
	}
	return out
}

// ModifyColumn implements sql.AlterableTable (MODIFY, CHANGE and RENAME COLUMN). Values are
// converted to the new type; a value that does not convert, or a NULL in a column made NOT
// NULL, fails the statement and leaves the table unchanged.
func (t *Table) ModifyColumn(ctx *sql.Context, name string, col *sql.Column, order *sql.ColumnOrder) error {
	if t.db.fe.ReadOnly() {
		return errReadOnly()
	}
	if err := checkColumn(col); err != nil {
		return err
	}
	return t.alter(ctx, func(next *engine.TableDef) (rowConverter, error) {
		from := findColumn(next.Columns, name)
		if from < 0 {
			return nil, sql.ErrTableColumnNotFound.New(next.Name, name)
		}
		if j := findColumn(next.Columns, col.Name); j >= 0 && j != from {
			return nil, sql.ErrColumnExists.New(col.Name)
		}
		oldDef := next.Columns[from]
		cd := columnDef(col)
		rest := append(append([]engine.ColumnDef(nil), next.Columns[:from]...), next.Columns[from+1:]...)
		to, err := orderPos(next.Name, rest, order, from)
		if err != nil {
			return nil, err
		}
		next.Columns = append(rest[:to:to], append([]engine.ColumnDef{cd}, rest[to:]...)...)
		if !strings.EqualFold(name, col.Name) {
			for k, p := range next.PK {
				if strings.EqualFold(p, name) {
					next.PK[k] = col.Name
				}
			}
			for k := range next.Indexes {
				for j, c := range next.Indexes[k].Columns {
					if strings.EqualFold(c, name) {
						next.Indexes[k].Columns[j] = col.Name
					}
				}
			}
		}
		if to == from && strings.EqualFold(oldDef.Type, cd.Type) && (cd.Nullable || !oldDef.Nullable) {
			return nil, nil // same values, same keys: the catalog change alone
		}
		return func(ctx *sql.Context, old sql.Row) (sql.Row, error) {
			v := old[from]
			if v == nil {
				if !col.Nullable {
					return nil, sqlErr(1138, "22004", "Invalid use of NULL value") // ER_INVALID_USE_OF_NULL
				}
			} else {
				cv, inRange, err := col.Type.Convert(ctx, v)
				if err != nil {
					return nil, fmt.Errorf("column %s value %v: %w", col.Name, v, err)
				}
				if inRange == sql.OutOfRange {
					return nil, sqlErr(1264, "22003", fmt.Sprintf("Out of range value for column '%s'", col.Name)) // ER_WARN_DATA_OUT_OF_RANGE
				}
				v = cv
			}
			row := make(sql.Row, 0, len(old))
			row = append(append(row, old[:from]...), old[from+1:]...)
			return append(row[:to:to], append(sql.Row{v}, row[to:]...)...), nil
		}, nil
	})
}

// alter applies a column change: change edits the next definition and returns how rows
// convert (nil: the stored rows stay valid, no rewrite). On success the Table serves the new
// definition (go-mysql-server may keep using it for the rest of the statement).
func (t *Table) alter(ctx *sql.Context, change func(next *engine.TableDef) (rowConverter, error)) error {
	eng := t.db.fe.engine()
	var conv rowConverter
	var changed bool
	probe := t.m.def.Clone()
	c, err := change(probe)
	if err != nil {
		return err
	}
	rewrite := c != nil
	def, err := eng.AlterTable(ctx, t.db.name, t.m.def.Name, rewrite, func(txn *engine.Txn, old, next *engine.TableDef) error {
		var err error
		if conv, err = change(next); err != nil {
			return err
		}
		changed = true
		m, err := buildMeta(next)
		if err != nil {
			return err
		}
		if conv == nil {
			if rewrite {
				return fmt.Errorf("alter table %s: the definition changed meanwhile; retry", next.Name)
			}
			return nil
		}
		if !rewrite {
			return fmt.Errorf("alter table %s: the definition changed meanwhile; retry", next.Name)
		}
		oldM, err := buildMeta(old)
		if err != nil {
			return err
		}
		return rewriteRows(ctx, eng, txn, oldM, m, conv)
	})
	if err != nil {
		return ddlError(err)
	}
	if !changed {
		return nil
	}
	m, err := t.db.fe.meta(def)
	if err != nil {
		return err
	}
	t.m = m
	return nil
}

// rewriteRows writes every row of oldM's data, converted, with its index entries, under m's
// data id (the caller holds the table's DDL lock; txn reads the latest committed rows).
func rewriteRows(ctx *sql.Context, eng *engine.Engine, txn *engine.Txn, oldM, m *tableMeta, conv rowConverter) error {
	p := engine.IndexPrefix(oldM.def.DataID, 0)
	it := txn.Scan(ctx, p, engine.PrefixEnd(p), false)
	seenPK := map[string]bool{}
	seenIdx := make([]map[string]bool, len(m.indexes))
	for kv, ok := it.Next(); ok; kv, ok = it.Next() {
		old, err := decodeRow(oldM.codecs, kv.Value)
		if err != nil {
			return fmt.Errorf("table %s key %x: %w", oldM.def.Name, kv.Key, err)
		}
		row, err := conv(ctx, old)
		if err != nil {
			return err
		}
		val, norm, err := encodeRow(ctx, m.codecs, row)
		if err != nil {
			return err
		}
		var pk []byte
		if len(m.pk) == 0 {
			for i, c := range m.codecs {
				if pk, err = c.appendKey(pk, norm[i], 0); err != nil {
					return err
				}
			}
			seq, err := eng.NextAutoIncrement(ctx, m.def.ID|1<<31, 0)
			if err != nil {
				return err
			}
			pk = engine.AppendUint(pk, seq)
		} else {
			if pk, err = m.pkTuple(norm); err != nil {
				return err
			}
			if seenPK[string(pk)] {
				return sql.NewUniqueKeyErr(fmt.Sprint(row), true, row)
			}
			seenPK[string(pk)] = true
		}
		txn.PutOwned(m.pkKey(pk), val)
		for k, im := range m.indexes {
			tuple, hasNull, err := m.indexTuple(im, norm)
			if err != nil {
				return err
			}
			if im.def.Unique && !hasNull {
				if seenIdx[k] == nil {
					seenIdx[k] = map[string]bool{}
				}
				if seenIdx[k][string(tuple)] {
					return sql.NewUniqueKeyErr(fmt.Sprint(row), false, row)
				}
				seenIdx[k][string(tuple)] = true
			}
			txn.PutOwned(m.indexKey(im, tuple, pk), pk)
		}
	}
	return it.Err()
}

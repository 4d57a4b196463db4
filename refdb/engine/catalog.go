package engine

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
)

// The catalog is stored in the volume under 0x00, written by ordinary transactions through the
// redo log, so a restarted or promoted writer (and readers) recover it like rows.
const (
	catMeta  = 'M' // 0x00 'M' -> catalogMeta (JSON)
	catDB    = 'D' // 0x00 'D' lower(name) -> DatabaseDef (JSON)
	catTable = 'T' // 0x00 'T' tid(4) -> TableDef (JSON)
	catAuto  = 'A' // 0x00 'A' tid(4) -> auto-increment values reserved so far (u64)
)

// ColumnDef is a column as stored in the catalog. Type and Default are SQL text, interpreted by
// the SQL layer, so the engine stays independent of it.
type ColumnDef struct {
	Name          string  `json:"name"`
	Type          string  `json:"type"`
	Nullable      bool    `json:"nullable,omitempty"`
	Default       *string `json:"default,omitempty"`
	Generated     *string `json:"generated,omitempty"`
	OnUpdate      *string `json:"on_update,omitempty"`
	AutoIncrement bool    `json:"auto_increment,omitempty"`
	Comment       string  `json:"comment,omitempty"`
}

// IndexDef is a secondary index.
type IndexDef struct {
	ID      uint16   `json:"id"`
	Name    string   `json:"name"`
	Columns []string `json:"columns"`
	Prefix  []uint16 `json:"prefix,omitempty"`
	Unique  bool     `json:"unique,omitempty"`
	Comment string   `json:"comment,omitempty"`
}

// TableDef is a table. DataID is the key prefix id of its rows; TRUNCATE gives a table a fresh
// DataID atomically, leaving the old rows as garbage to delete in the background.
type TableDef struct {
	ID          uint32      `json:"id"`
	DataID      uint32      `json:"data_id"`
	DB          string      `json:"db"`
	Name        string      `json:"name"`
	Columns     []ColumnDef `json:"columns"`
	PK          []string    `json:"pk"`
	Indexes     []IndexDef  `json:"indexes,omitempty"`
	Collation   string      `json:"collation,omitempty"`
	Comment     string      `json:"comment,omitempty"`
	Version     uint64      `json:"version"`
	NextIndexID uint16      `json:"next_index_id"`
}

// Clone returns a deep copy.
func (d *TableDef) Clone() *TableDef {
	b, _ := json.Marshal(d)
	var c TableDef
	_ = json.Unmarshal(b, &c)
	return &c
}

// DatabaseDef is a database.
type DatabaseDef struct {
	Name      string `json:"name"`
	Collation string `json:"collation,omitempty"`
}

type catalogMeta struct {
	NextTableID uint32 `json:"next_table_id"`
}

// Catalog is an immutable snapshot of the schema; DDL installs a new one.
type Catalog struct {
	DBs     map[string]*DatabaseDef // by lower-case name
	Tables  map[uint32]*TableDef
	byName  map[string]uint32 // lower(db) \x00 lower(table)
	nextTID uint32
}

func nameKey(db, table string) string { return strings.ToLower(db) + "\x00" + strings.ToLower(table) }

func (c *Catalog) clone() *Catalog {
	n := &Catalog{DBs: map[string]*DatabaseDef{}, Tables: map[uint32]*TableDef{}, byName: map[string]uint32{}, nextTID: c.nextTID}
	for k, v := range c.DBs {
		n.DBs[k] = v
	}
	for k, v := range c.Tables {
		n.Tables[k] = v
	}
	for k, v := range c.byName {
		n.byName[k] = v
	}
	return n
}

// Database returns the database named name (case-insensitive).
func (c *Catalog) Database(name string) (*DatabaseDef, bool) {
	d, ok := c.DBs[strings.ToLower(name)]
	return d, ok
}

// Table returns the table db.name (case-insensitive).
func (c *Catalog) Table(db, name string) (*TableDef, bool) {
	id, ok := c.byName[nameKey(db, name)]
	if !ok {
		return nil, false
	}
	return c.Tables[id], true
}

// TableNames lists the tables of db, sorted.
func (c *Catalog) TableNames(db string) []string {
	var out []string
	for _, t := range c.Tables {
		if strings.EqualFold(t.DB, db) {
			out = append(out, t.Name)
		}
	}
	sort.Strings(out)
	return out
}

// DatabaseNames lists the databases, sorted.
func (c *Catalog) DatabaseNames() []string {
	var out []string
	for _, d := range c.DBs {
		out = append(out, d.Name)
	}
	sort.Strings(out)
	return out
}

func catKey(kind byte, rest ...byte) []byte { return append([]byte{catalogByte, kind}, rest...) }

func tidBytes(tid uint32) []byte { return binary.BigEndian.AppendUint32(nil, tid) }

// Catalog returns the current catalog snapshot.
func (e *Engine) Catalog() *Catalog { return e.catalog.Load() }

// Errors of catalog operations.
var (
	ErrExists          = errors.New("already exists")
	ErrNotFound        = errors.New("not found")
	ErrTableDefChanged = errors.New("Table definition has changed, please retry transaction")
)

func (e *Engine) loadCatalog(ctx context.Context) error {
	c := &Catalog{DBs: map[string]*DatabaseDef{}, Tables: map[uint32]*TableDef{}, byName: map[string]uint32{}, nextTID: 1}
	kvs, err := e.store.Scan(ctx, []byte{catalogByte}, []byte{catalogByte + 1}, e.store.VDL(), 0)
	if err != nil {
		return fmt.Errorf("load catalog: %w", err)
	}
	for _, kv := range kvs {
		if len(kv.Key) < 2 {
			continue
		}
		switch kv.Key[1] {
		case catMeta:
			var m catalogMeta
			if err := json.Unmarshal(kv.Value, &m); err != nil {
				return fmt.Errorf("load catalog meta: %w", err)
			}
			c.nextTID = max(c.nextTID, m.NextTableID)
		case catDB:
			var d DatabaseDef
			if err := json.Unmarshal(kv.Value, &d); err != nil {
				return fmt.Errorf("load catalog database %q: %w", kv.Key[2:], err)
			}
			c.DBs[strings.ToLower(d.Name)] = &d
		case catTable:
			var t TableDef
			if err := json.Unmarshal(kv.Value, &t); err != nil {
				return fmt.Errorf("load catalog table %x: %w", kv.Key[2:], err)
			}
			c.Tables[t.ID] = &t
			c.byName[nameKey(t.DB, t.Name)] = t.ID
			c.nextTID = max(c.nextTID, t.ID+1, t.DataID+1)
		case catAuto:
			if len(kv.Key) != 6 || len(kv.Value) != 8 {
				return fmt.Errorf("load catalog: bad auto-increment entry %x", kv.Key)
			}
			tid := binary.BigEndian.Uint32(kv.Key[2:])
			v := binary.BigEndian.Uint64(kv.Value)
			// Values below the reservation may have been used before the crash: restart above it.
			e.autoInc[tid] = &autoCounter{next: v, reserved: v}
		}
	}
	e.catalog.Store(c)
	e.log.Info("catalog loaded", "databases", len(c.DBs), "tables", len(c.Tables))
	return nil
}

// ddl runs fn in a transaction that commits the catalog it returns, then installs it. DDL is
// serialized; fn gets a private copy of the catalog to change.
func (e *Engine) ddl(ctx context.Context, fn func(txn *Txn, c *Catalog) error) error {
	e.catMu.Lock()
	defer e.catMu.Unlock()
	c := e.Catalog().clone()
	txn := e.Begin(TxnOptions{})
	if err := fn(txn, c); err != nil {
		txn.Rollback()
		return err
	}
	meta, _ := json.Marshal(catalogMeta{NextTableID: c.nextTID})
	if err := txn.Put(ctx, catKey(catMeta), meta); err != nil {
		txn.Rollback()
		return err
	}
	if _, err := txn.Commit(ctx); err != nil {
		return fmt.Errorf("ddl commit: %w", err)
	}
	e.catalog.Store(c)
	return nil
}

func putTable(ctx context.Context, txn *Txn, c *Catalog, t *TableDef) error {
	b, err := json.Marshal(t)
	if err != nil {
		return fmt.Errorf("encode table %s.%s: %w", t.DB, t.Name, err)
	}
	c.Tables[t.ID] = t
	c.byName[nameKey(t.DB, t.Name)] = t.ID
	return txn.Put(ctx, catKey(catTable, tidBytes(t.ID)...), b)
}

// CreateDatabase adds a database.
func (e *Engine) CreateDatabase(ctx context.Context, d DatabaseDef) error {
	return e.ddl(ctx, func(txn *Txn, c *Catalog) error {
		if _, ok := c.Database(d.Name); ok {
			return fmt.Errorf("database %q: %w", d.Name, ErrExists)
		}
		b, _ := json.Marshal(d)
		c.DBs[strings.ToLower(d.Name)] = &d
		return txn.Put(ctx, catKey(catDB, []byte(strings.ToLower(d.Name))...), b)
	})
}

// DropDatabase removes a database and its tables.
func (e *Engine) DropDatabase(ctx context.Context, name string) error {
	var garbage []uint32
	err := e.ddl(ctx, func(txn *Txn, c *Catalog) error {
		if _, ok := c.Database(name); !ok {
			return fmt.Errorf("database %q: %w", name, ErrNotFound)
		}
		for id, t := range c.Tables {
			if !strings.EqualFold(t.DB, name) {
				continue
			}
			unlock := e.lockTableDDL(id)
			defer unlock()
			garbage = append(garbage, t.DataID)
			delete(c.Tables, id)
			delete(c.byName, nameKey(t.DB, t.Name))
			if err := txn.Delete(ctx, catKey(catTable, tidBytes(id)...)); err != nil {
				return err
			}
		}
		delete(c.DBs, strings.ToLower(name))
		return txn.Delete(ctx, catKey(catDB, []byte(strings.ToLower(name))...))
	})
	if err != nil {
		return err
	}
	for _, id := range garbage {
		e.deleteData(ctx, id)
	}
	return nil
}

// CreateTable adds a table; it assigns ID and DataID.
func (e *Engine) CreateTable(ctx context.Context, def *TableDef) (*TableDef, error) {
	t := def.Clone()
	err := e.ddl(ctx, func(txn *Txn, c *Catalog) error {
		if _, ok := c.Database(t.DB); !ok {
			return fmt.Errorf("database %q: %w", t.DB, ErrNotFound)
		}
		if _, ok := c.Table(t.DB, t.Name); ok {
			return fmt.Errorf("table %q: %w", t.Name, ErrExists)
		}
		t.ID = c.nextTID
		t.DataID = t.ID
		c.nextTID++
		t.Version = 1
		if t.NextIndexID == 0 {
			t.NextIndexID = 1
		}
		for i := range t.Indexes {
			t.Indexes[i].ID = t.NextIndexID
			t.NextIndexID++
		}
		return putTable(ctx, txn, c, t)
	})
	if err != nil {
		return nil, err
	}
	return t, nil
}

// DropTable removes a table and then deletes its rows.
func (e *Engine) DropTable(ctx context.Context, db, name string) error {
	var dataID, tid uint32
	err := e.ddl(ctx, func(txn *Txn, c *Catalog) error {
		t, ok := c.Table(db, name)
		if !ok {
			return fmt.Errorf("table %q: %w", name, ErrNotFound)
		}
		unlock := e.lockTableDDL(t.ID)
		defer unlock()
		dataID, tid = t.DataID, t.ID
		delete(c.Tables, t.ID)
		delete(c.byName, nameKey(t.DB, t.Name))
		if err := txn.Delete(ctx, catKey(catAuto, tidBytes(t.ID)...)); err != nil {
			return err
		}
		return txn.Delete(ctx, catKey(catTable, tidBytes(t.ID)...))
	})
	if err != nil {
		return err
	}
	e.autoMu.Lock()
	delete(e.autoInc, tid)
	e.autoMu.Unlock()
	e.deleteData(ctx, dataID)
	return nil
}

// AlterTable changes a table's definition under its exclusive DDL lock: no commit touching
// the table runs meanwhile, and transactions that wrote it under the old definition fail at
// commit with ErrTableDefChanged. fn may read and write rows through txn (index backfill,
// row rewrite); the txn sees the latest committed rows. The returned definition gets a new
// version. With newData, the table gets a fresh DataID (fn writes the new rows there) and the
// old rows are deleted afterwards.
func (e *Engine) AlterTable(ctx context.Context, db, name string, newData bool, fn func(txn *Txn, old *TableDef, next *TableDef) error) (*TableDef, error) {
	var out *TableDef
	var garbage uint32
	err := e.ddl(ctx, func(txn *Txn, c *Catalog) error {
		old, ok := c.Table(db, name)
		if !ok {
			return fmt.Errorf("table %q: %w", name, ErrNotFound)
		}
		unlock := e.lockTableDDL(old.ID)
		defer unlock()
		// Under the lock no commit on the table is in flight: read the latest rows.
		txn.snap = e.store.VDL()
		next := old.Clone()
		next.Version++
		if newData {
			next.DataID = c.nextTID
			c.nextTID++
			garbage = old.DataID
		}
		if err := fn(txn, old, next); err != nil {
			return err
		}
		if !strings.EqualFold(next.Name, old.Name) || !strings.EqualFold(next.DB, old.DB) {
			if _, ok := c.Table(next.DB, next.Name); ok {
				return fmt.Errorf("table %q: %w", next.Name, ErrExists)
			}
			delete(c.byName, nameKey(old.DB, old.Name))
		}
		out = next
		return putTable(ctx, txn, c, next)
	})
	if err != nil {
		return nil, err
	}
	if garbage != 0 {
		e.deleteData(ctx, garbage)
	}
	return out, nil
}

// deleteData deletes the rows under a data id no table uses any more, in batches. A crash
// midway leaves unreachable garbage, never a visible change.
func (e *Engine) deleteData(ctx context.Context, dataID uint32) {
	prefix := TablePrefix(dataID)
	end := PrefixEnd(prefix)
	for {
		kvs, err := e.store.Scan(ctx, prefix, end, e.store.VDL(), 4096)
		if err != nil {
			e.log.Warn("deleting dropped table data", "data_id", dataID, "err", err)
			return
		}
		if len(kvs) == 0 {
			return
		}
		writes := make([]Write, len(kvs))
		for i, kv := range kvs {
			writes[i] = Write{Key: kv.Key, Delete: true}
		}
		// No transaction can lock these keys (no table maps to them), so write directly.
		keys := make([]string, len(writes))
		for i, w := range writes {
			keys[i] = string(w.Key)
		}
		e.cache.beginWrite(keys)
		lsn, err := e.store.Commit(ctx, writes)
		e.cache.endWrite(keys, writes, lsn, err == nil)
		if err != nil {
			e.log.Warn("deleting dropped table data", "data_id", dataID, "err", err)
			return
		}
	}
}

// tableLock returns the metadata lock of table id.
func (e *Engine) tableLock(id uint32) *sync.RWMutex {
	e.tblMu.Lock()
	defer e.tblMu.Unlock()
	l := e.tblLock[id]
	if l == nil {
		l = &sync.RWMutex{}
		e.tblLock[id] = l
	}
	return l
}

func (e *Engine) lockTableDDL(id uint32) func() {
	l := e.tableLock(id)
	l.Lock()
	return l.Unlock
}

// TableCommitHook returns a commit hook that holds table id's metadata lock in shared mode
// across the commit and fails it if the table's definition is no longer version.
func (e *Engine) TableCommitHook(id uint32, version uint64) CommitHook {
	return func() (func(), error) {
		l := e.tableLock(id)
		l.RLock()
		t, ok := e.Catalog().Tables[id]
		if !ok || t.Version != version {
			l.RUnlock()
			return nil, ErrTableDefChanged
		}
		return l.RUnlock, nil
	}
}

// autoCounter is a table's AUTO_INCREMENT sequence. Values are reserved in blocks persisted
// through the log, so a restarted writer continues above every value it may have handed out.
type autoCounter struct {
	mu       sync.Mutex
	next     uint64
	reserved uint64 // values < reserved may have been used
}

const autoIncBlock = 1000

func (e *Engine) counter(tid uint32) *autoCounter {
	e.autoMu.Lock()
	defer e.autoMu.Unlock()
	c := e.autoInc[tid]
	if c == nil {
		c = &autoCounter{next: 1, reserved: 1}
		e.autoInc[tid] = c
	}
	return c
}

// reserve persists that values below upTo may be used; call with c.mu held.
func (e *Engine) reserve(ctx context.Context, tid uint32, c *autoCounter, upTo uint64) error {
	txn := e.Begin(TxnOptions{})
	if err := txn.Put(ctx, catKey(catAuto, tidBytes(tid)...), binary.BigEndian.AppendUint64(nil, upTo)); err != nil {
		txn.Rollback()
		return fmt.Errorf("reserve auto-increment values: %w", err)
	}
	if _, err := txn.Commit(ctx); err != nil {
		return fmt.Errorf("reserve auto-increment values: %w", err)
	}
	c.reserved = upTo
	return nil
}

// NextAutoIncrement hands out the next value of table tid's sequence. explicit > 0 is a value
// the statement supplied: the sequence moves past it instead.
func (e *Engine) NextAutoIncrement(ctx context.Context, tid uint32, explicit uint64) (uint64, error) {
	c := e.counter(tid)
	c.mu.Lock()
	defer c.mu.Unlock()
	v := c.next
	if explicit > 0 {
		v = explicit
	}
	if v >= c.reserved {
		if err := e.reserve(ctx, tid, c, v+autoIncBlock); err != nil {
			return 0, err
		}
	}
	if v >= c.next {
		c.next = v + 1
	}
	return v, nil
}

// PeekAutoIncrement is the value the next insert would get.
func (e *Engine) PeekAutoIncrement(tid uint32) uint64 {
	c := e.counter(tid)
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.next
}

// SetAutoIncrement sets the next value (ALTER TABLE ... AUTO_INCREMENT = v, TRUNCATE).
func (e *Engine) SetAutoIncrement(ctx context.Context, tid uint32, v uint64) error {
	c := e.counter(tid)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := e.reserve(ctx, tid, c, v); err != nil {
		return err
	}
	c.next = v
	return nil
}

package sqlfront

import (
	"errors"
	"fmt"
	"strings"

	"github.com/dolthub/go-mysql-server/sql"

	"github.com/aurorabench/aurorabench/refdb/engine"
)

// Provider lists the databases of the engine's catalog.
type Provider struct{ fe *Frontend }

var (
	_ sql.DatabaseProvider         = (*Provider)(nil)
	_ sql.MutableDatabaseProvider  = (*Provider)(nil)
	_ sql.CollatedDatabaseProvider = (*Provider)(nil)
)

func (p *Provider) Database(ctx *sql.Context, name string) (sql.Database, error) {
	d, ok := p.fe.engine().Catalog().Database(name)
	if !ok {
		return nil, sql.ErrDatabaseNotFound.New(name)
	}
	return &Database{fe: p.fe, name: d.Name}, nil
}

func (p *Provider) HasDatabase(ctx *sql.Context, name string) bool {
	_, ok := p.fe.engine().Catalog().Database(name)
	return ok
}

func (p *Provider) AllDatabases(ctx *sql.Context) []sql.Database {
	var out []sql.Database
	for _, n := range p.fe.engine().Catalog().DatabaseNames() {
		out = append(out, &Database{fe: p.fe, name: n})
	}
	return out
}

func (p *Provider) CreateDatabase(ctx *sql.Context, name string) error {
	return p.CreateCollatedDatabase(ctx, name, sql.Collation_Default)
}

func (p *Provider) CreateCollatedDatabase(ctx *sql.Context, name string, collation sql.CollationID) error {
	if p.fe.ReadOnly() {
		return errReadOnly()
	}
	err := p.fe.engine().CreateDatabase(ctx, engine.DatabaseDef{Name: name, Collation: collation.Name()})
	if errors.Is(err, engine.ErrExists) {
		return sql.ErrDatabaseExists.New(name)
	}
	return ddlError(err)
}

func (p *Provider) DropDatabase(ctx *sql.Context, name string) error {
	if p.fe.ReadOnly() {
		return errReadOnly()
	}
	err := p.fe.engine().DropDatabase(ctx, name)
	if errors.Is(err, engine.ErrNotFound) {
		return sql.ErrDatabaseNotFound.New(name)
	}
	return ddlError(err)
}

// Database is one database of the catalog.
type Database struct {
	fe   *Frontend
	name string
}

var (
	_ sql.Database         = (*Database)(nil)
	_ sql.TableCreator     = (*Database)(nil)
	_ sql.TableDropper     = (*Database)(nil)
	_ sql.TableRenamer     = (*Database)(nil)
	_ sql.CollatedDatabase = (*Database)(nil)
)

func (d *Database) Name() string { return d.name }

func (d *Database) GetTableInsensitive(ctx *sql.Context, name string) (sql.Table, bool, error) {
	def, ok := d.fe.engine().Catalog().Table(d.name, name)
	if !ok {
		return nil, false, nil
	}
	m, err := d.fe.meta(def)
	if err != nil {
		return nil, false, err
	}
	return &Table{db: d, m: m}, true, nil
}

func (d *Database) GetTableNames(ctx *sql.Context) ([]string, error) {
	return d.fe.engine().Catalog().TableNames(d.name), nil
}

func (d *Database) GetCollation(ctx *sql.Context) sql.CollationID {
	if db, ok := d.fe.engine().Catalog().Database(d.name); ok && db.Collation != "" {
		if c, err := sql.ParseCollation("", db.Collation, false); err == nil {
			return c
		}
	}
	return sql.Collation_Default
}

func (d *Database) SetCollation(ctx *sql.Context, collation sql.CollationID) error {
	return sql.ErrUnsupportedFeature.New("ALTER DATABASE ... COLLATE")
}

// CreateTable implements sql.TableCreator.
func (d *Database) CreateTable(ctx *sql.Context, name string, schema sql.PrimaryKeySchema, collation sql.CollationID, comment string) error {
	if d.fe.ReadOnly() {
		return errReadOnly()
	}
	def := &engine.TableDef{DB: d.name, Name: name, Collation: collation.Name(), Comment: comment}
	for _, col := range schema.Schema {
		if _, err := newCodec(col.Type); err != nil {
			return sql.ErrUnsupportedFeature.New(err.Error())
		}
		def.Columns = append(def.Columns, columnDef(col))
	}
	for _, i := range schema.PkOrdinals {
		def.PK = append(def.PK, schema.Schema[i].Name)
	}
	def.NextIndexID = 1
	if _, err := buildMeta(def); err != nil {
		return fmt.Errorf("create table %s: %w", name, err)
	}
	_, err := d.fe.engine().CreateTable(ctx, def)
	if errors.Is(err, engine.ErrExists) {
		return sql.ErrTableAlreadyExists.New(name)
	}
	return ddlError(err)
}

func columnDef(col *sql.Column) engine.ColumnDef {
	cd := engine.ColumnDef{Name: col.Name, Type: col.Type.String(), Nullable: col.Nullable,
		AutoIncrement: col.AutoIncrement, Comment: col.Comment}
	str := func(v *sql.ColumnDefaultValue) *string {
		if v == nil {
			return nil
		}
		s := v.String()
		return &s
	}
	cd.Default, cd.Generated, cd.OnUpdate = str(col.Default), str(col.Generated), str(col.OnUpdate)
	return cd
}

// DropTable implements sql.TableDropper.
func (d *Database) DropTable(ctx *sql.Context, name string) error {
	if d.fe.ReadOnly() {
		return errReadOnly()
	}
	err := d.fe.engine().DropTable(ctx, d.name, name)
	if errors.Is(err, engine.ErrNotFound) {
		return sql.ErrTableNotFound.New(name)
	}
	return ddlError(err)
}

// RenameTable implements sql.TableRenamer.
func (d *Database) RenameTable(ctx *sql.Context, oldName, newName string) error {
	if d.fe.ReadOnly() {
		return errReadOnly()
	}
	_, err := d.fe.engine().AlterTable(ctx, d.name, oldName, false, func(_ *engine.Txn, _, next *engine.TableDef) error {
		next.Name = newName
		return nil
	})
	if errors.Is(err, engine.ErrExists) {
		return sql.ErrTableAlreadyExists.New(newName)
	}
	return ddlError(err)
}

func ddlError(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, engine.ErrNotFound) {
		msg := err.Error()
		return sql.ErrTableNotFound.New(strings.TrimSuffix(msg, ": "+engine.ErrNotFound.Error()))
	}
	return toSQLError(err)
}

// Views are not stored yet: the database has none, and CREATE VIEW says so.
var _ sql.ViewDatabase = (*Database)(nil)

func (d *Database) CreateView(ctx *sql.Context, name string, selectStatement, createViewStmt string) error {
	return sql.ErrUnsupportedFeature.New("CREATE VIEW on refdb")
}

func (d *Database) DropView(ctx *sql.Context, name string) error {
	return sql.ErrViewDoesNotExist.New(d.name, name)
}

func (d *Database) GetViewDefinition(ctx *sql.Context, viewName string) (sql.ViewDefinition, bool, error) {
	return sql.ViewDefinition{}, false, nil
}

func (d *Database) AllViews(ctx *sql.Context) ([]sql.ViewDefinition, error) { return nil, nil }

// Triggers and stored procedures are not stored yet: the database has none, and creating one
// says so. (go-mysql-server asks every database for its triggers before each write.)
var (
	_ sql.TriggerDatabase         = (*Database)(nil)
	_ sql.StoredProcedureDatabase = (*Database)(nil)
)

func (d *Database) GetTriggers(ctx *sql.Context) ([]sql.TriggerDefinition, error) { return nil, nil }

func (d *Database) CreateTrigger(ctx *sql.Context, def sql.TriggerDefinition) error {
	return sql.ErrUnsupportedFeature.New("CREATE TRIGGER on refdb")
}

func (d *Database) DropTrigger(ctx *sql.Context, name string) error {
	return sql.ErrTriggerDoesNotExist.New(name)
}

func (d *Database) GetStoredProcedure(ctx *sql.Context, name string) (sql.StoredProcedureDetails, bool, error) {
	return sql.StoredProcedureDetails{}, false, nil
}

func (d *Database) GetStoredProcedures(ctx *sql.Context) ([]sql.StoredProcedureDetails, error) {
	return nil, nil
}

func (d *Database) SaveStoredProcedure(ctx *sql.Context, spd sql.StoredProcedureDetails) error {
	return sql.ErrUnsupportedFeature.New("CREATE PROCEDURE on refdb")
}

func (d *Database) DropStoredProcedure(ctx *sql.Context, name string) error {
	return sql.ErrStoredProcedureDoesNotExist.New(name)
}

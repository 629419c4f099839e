// Command skypanel-mongo is the managed MongoDB databases' health check, dump, restore and count,
// run inside the database's container by the node (docs/databases.md). It speaks the MongoDB wire
// protocol through the Go driver, so the same binary serves the local FerretDB image and a real
// MongoDB: MongoDB's own tools are not served here, and their archive format is not documented.
//
//	skypanel-mongo ping      exits 0 once the server accepts the root user's password
//	skypanel-mongo count     prints how many documents the database's collections hold
//	skypanel-mongo dump      writes the database as an archive to stdout
//	skypanel-mongo restore   replaces the database's collections with the archive on stdin
//
// It connects to 127.0.0.1:27017 (SKYPANEL_MONGO_ADDR) as MONGO_INITDB_ROOT_USERNAME with
// MONGO_INITDB_ROOT_PASSWORD (authenticated against admin) and works on MONGO_INITDB_DATABASE:
// the official image's variables, which the catalogue row sets. The password is never an argument.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
)

const usage = "usage: skypanel-mongo ping|count|dump|restore (see docs/databases.md)"

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1], os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "skypanel-mongo "+os.Args[1]+":", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, command string, stdin io.Reader, stdout, stderr io.Writer) error {
	switch command {
	case "ping", "count", "dump", "restore":
	default:
		return errors.New(usage)
	}
	database := os.Getenv("MONGO_INITDB_DATABASE")
	if database == "" {
		return errors.New("MONGO_INITDB_DATABASE is not set: which database to work on")
	}
	client, err := connect(ctx)
	if err != nil {
		return err
	}
	defer client.Disconnect(context.Background()) //nolint:errcheck // nothing left to lose
	db := client.Database(database)

	switch command {
	case "ping":
		pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return client.Database("admin").RunCommand(pingCtx, bson.D{{Key: "ping", Value: 1}}).Err()
	case "count":
		n, err := countDocuments(ctx, db)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(stdout, n)
		return err
	case "dump":
		return dump(ctx, db, stdout, stderr)
	default:
		return restore(ctx, db, stdin, stderr)
	}
}

func connect(ctx context.Context) (*mongo.Client, error) {
	addr := os.Getenv("SKYPANEL_MONGO_ADDR")
	if addr == "" {
		addr = "127.0.0.1:27017"
	}
	opts := options.Client().SetHosts([]string{addr}).SetDirect(true).
		SetServerSelectionTimeout(10 * time.Second).SetAppName("skypanel-mongo")
	if user := os.Getenv("MONGO_INITDB_ROOT_USERNAME"); user != "" {
		opts.SetAuth(options.Credential{Username: user, Password: os.Getenv("MONGO_INITDB_ROOT_PASSWORD"), AuthSource: "admin"})
	}
	client, err := mongo.Connect(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", addr, err)
	}
	return client, nil
}

// userCollections are the database's collections, system ones and views left out (a view holds
// no documents of its own; FerretDB has none).
func userCollections(ctx context.Context, db *mongo.Database) ([]mongo.CollectionSpecification, error) {
	specs, err := db.ListCollectionSpecifications(ctx, bson.D{})
	if err != nil {
		return nil, fmt.Errorf("list the collections of %s: %w", db.Name(), err)
	}
	var out []mongo.CollectionSpecification
	for _, s := range specs {
		if strings.HasPrefix(s.Name, "system.") || (s.Type != "" && s.Type != "collection") {
			continue
		}
		out = append(out, *s)
	}
	return out, nil
}

func countDocuments(ctx context.Context, db *mongo.Database) (int64, error) {
	colls, err := userCollections(ctx, db)
	if err != nil {
		return 0, err
	}
	var total int64
	for _, c := range colls {
		n, err := db.Collection(c.Name).CountDocuments(ctx, bson.D{})
		if err != nil {
			return 0, fmt.Errorf("count %s: %w", c.Name, err)
		}
		total += n
	}
	return total, nil
}

func dump(ctx context.Context, db *mongo.Database, stdout, stderr io.Writer) error {
	colls, err := userCollections(ctx, db)
	if err != nil {
		return err
	}
	aw, err := newArchiveWriter(stdout)
	if err != nil {
		return err
	}
	for _, c := range colls {
		coll := db.Collection(c.Name)
		indexes, err := secondaryIndexes(ctx, coll)
		if err != nil {
			return err
		}
		if err := aw.Collection(collectionRecord{Collection: c.Name, Options: nonEmpty(c.Options), Indexes: indexes}); err != nil {
			return err
		}
		cursor, err := coll.Find(ctx, bson.D{})
		if err != nil {
			return fmt.Errorf("read %s: %w", c.Name, err)
		}
		for cursor.Next(ctx) {
			if err := aw.Document(cursor.Current); err != nil {
				cursor.Close(ctx) //nolint:errcheck // the write error is the one to report
				return fmt.Errorf("write the archive: %w", err)
			}
		}
		if err := cursor.Err(); err != nil {
			cursor.Close(ctx) //nolint:errcheck // the read error is the one to report
			return fmt.Errorf("read %s: %w", c.Name, err)
		}
		if err := cursor.Close(ctx); err != nil {
			return fmt.Errorf("read %s: %w", c.Name, err)
		}
	}
	if err := aw.Close(); err != nil {
		return fmt.Errorf("write the archive: %w", err)
	}
	fmt.Fprintf(stderr, "dumped %d collections, %d documents of %s\n", aw.collections, aw.documents, db.Name())
	return nil
}

// secondaryIndexes are a collection's index specifications but _id's (every collection has it),
// without the fields a server fills in itself.
func secondaryIndexes(ctx context.Context, coll *mongo.Collection) ([]bson.Raw, error) {
	cursor, err := coll.Indexes().List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list the indexes of %s: %w", coll.Name(), err)
	}
	defer cursor.Close(ctx) //nolint:errcheck // read-only
	var out []bson.Raw
	for cursor.Next(ctx) {
		var spec bson.D
		if err := bson.Unmarshal(cursor.Current, &spec); err != nil {
			return nil, fmt.Errorf("an index of %s: %w", coll.Name(), err)
		}
		keep := bson.D{}
		for _, e := range spec {
			if e.Key == "name" && e.Value == "_id_" {
				keep = nil
				break
			}
			if e.Key != "v" && e.Key != "ns" {
				keep = append(keep, e)
			}
		}
		if keep == nil {
			continue
		}
		raw, err := bson.Marshal(keep)
		if err != nil {
			return nil, err
		}
		out = append(out, raw)
	}
	return out, cursor.Err()
}

func nonEmpty(raw bson.Raw) bson.Raw {
	if elems, err := raw.Elements(); err != nil || len(elems) == 0 {
		return nil
	}
	return raw
}

// restore checks the whole archive before it changes anything: it is spooled to a private file
// beside the data while it is read and validated, and only a complete archive replaces the
// database's collections. The database is the one this container serves, never one the archive
// names (it names none).
func restore(ctx context.Context, db *mongo.Database, stdin io.Reader, stderr io.Writer) error {
	dir := os.Getenv("SKYPANEL_MONGO_SPOOL_DIR")
	if dir == "" {
		dir = "/data/db"
	}
	spool, err := os.CreateTemp(dir, ".restore-*")
	if err != nil {
		return fmt.Errorf("a file to receive the archive: %w", err)
	}
	defer os.Remove(spool.Name()) //nolint:errcheck // best effort; the name is private
	defer spool.Close()           //nolint:errcheck // read-only by then

	if _, _, err := readArchive(io.TeeReader(stdin, spool), nopVisitor{}); err != nil {
		return fmt.Errorf("the archive is refused, nothing was changed: %w", err)
	}
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return err
	}

	existing, err := userCollections(ctx, db)
	if err != nil {
		return err
	}
	for _, c := range existing {
		if err := db.Collection(c.Name).Drop(ctx); err != nil {
			return fmt.Errorf("drop %s before the restore: %w", c.Name, err)
		}
	}
	r := &restorer{ctx: ctx, db: db}
	colls, docs, err := readArchive(spool, r)
	if err == nil {
		err = r.finishCollection()
	}
	if err != nil {
		return fmt.Errorf("restore into %s: %w", db.Name(), err)
	}
	fmt.Fprintf(stderr, "restored %d collections, %d documents into %s\n", colls, docs, db.Name())
	return nil
}

type nopVisitor struct{}

func (nopVisitor) Collection(collectionRecord) error { return nil }
func (nopVisitor) Document(bson.Raw) error           { return nil }

// restorer creates each collection as it comes, inserts its documents in batches and builds its
// indexes once they are all in.
type restorer struct {
	ctx        context.Context
	db         *mongo.Database
	current    collectionRecord
	open       bool
	batch      []any
	batchBytes int
}

const (
	batchDocs  = 1000
	batchBytes = 8 << 20
)

func (r *restorer) Collection(rec collectionRecord) error {
	if err := r.finishCollection(); err != nil {
		return err
	}
	create := bson.D{{Key: "create", Value: rec.Collection}}
	if rec.Options != nil {
		var opts bson.D
		if err := bson.Unmarshal(rec.Options, &opts); err != nil {
			return fmt.Errorf("the options of %s: %w", rec.Collection, err)
		}
		create = append(create, opts...)
	}
	if err := r.db.RunCommand(r.ctx, create).Err(); err != nil {
		return fmt.Errorf("create %s: %w", rec.Collection, err)
	}
	r.current, r.open = rec, true
	return nil
}

func (r *restorer) Document(doc bson.Raw) error {
	r.batch = append(r.batch, doc)
	r.batchBytes += len(doc)
	if len(r.batch) >= batchDocs || r.batchBytes >= batchBytes {
		return r.flush()
	}
	return nil
}

func (r *restorer) flush() error {
	if len(r.batch) == 0 {
		return nil
	}
	if _, err := r.db.Collection(r.current.Collection).InsertMany(r.ctx, r.batch); err != nil {
		return fmt.Errorf("insert into %s: %w", r.current.Collection, err)
	}
	r.batch, r.batchBytes = r.batch[:0], 0
	return nil
}

func (r *restorer) finishCollection() error {
	if !r.open {
		return nil
	}
	if err := r.flush(); err != nil {
		return err
	}
	if len(r.current.Indexes) > 0 {
		indexes := make(bson.A, len(r.current.Indexes))
		for i, ix := range r.current.Indexes {
			indexes[i] = ix
		}
		cmd := bson.D{{Key: "createIndexes", Value: r.current.Collection}, {Key: "indexes", Value: indexes}}
		if err := r.db.RunCommand(r.ctx, cmd).Err(); err != nil {
			return fmt.Errorf("the indexes of %s: %w", r.current.Collection, err)
		}
	}
	r.open = false
	return nil
}

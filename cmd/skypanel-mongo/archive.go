package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"go.mongodb.org/mongo-driver/bson"
)

// The archive is a stream of BSON documents, each one self-delimiting (its first four bytes are
// its length), so it is written and read in one pass without holding a collection in memory:
//
//	{"format": "skypanel-mongo-archive", "version": 1}
//	{"collection": NAME, "options": {...}, "indexes": [...]}   once per collection, then
//	{"d": DOCUMENT}                                            each document of that collection
//	{"end": true, "collections": N, "documents": M}
//
// The end record carries the counts, so a truncated or spliced archive is refused before a
// restore drops anything. The archive never names the database: a restore writes into the one
// it is run for, whatever database the dump came from.
const (
	archiveFormat  = "skypanel-mongo-archive"
	archiveVersion = 1
	// maxRecord bounds one record: MongoDB's 16 MiB document limit, wrapped, with room to spare.
	maxRecord = 48 << 20
)

type archiveHeader struct {
	Format  string `bson:"format"`
	Version int    `bson:"version"`
}

type collectionRecord struct {
	Collection string     `bson:"collection"`
	Options    bson.Raw   `bson:"options,omitempty"`
	Indexes    []bson.Raw `bson:"indexes,omitempty"`
}

type documentRecord struct {
	D bson.Raw `bson:"d"`
}

type endRecord struct {
	End         bool  `bson:"end"`
	Collections int64 `bson:"collections"`
	Documents   int64 `bson:"documents"`
}

// archiveWriter writes an archive and counts what it wrote for the end record.
type archiveWriter struct {
	w                      *bufio.Writer
	collections, documents int64
}

func newArchiveWriter(w io.Writer) (*archiveWriter, error) {
	aw := &archiveWriter{w: bufio.NewWriterSize(w, 1<<20)}
	return aw, aw.write(archiveHeader{Format: archiveFormat, Version: archiveVersion})
}

func (aw *archiveWriter) write(v any) error {
	raw, err := bson.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode archive record: %w", err)
	}
	if len(raw) > maxRecord {
		return fmt.Errorf("a record of %d bytes is larger than the archive allows (%d)", len(raw), maxRecord)
	}
	_, err = aw.w.Write(raw)
	return err
}

func (aw *archiveWriter) Collection(rec collectionRecord) error {
	aw.collections++
	return aw.write(rec)
}

func (aw *archiveWriter) Document(doc bson.Raw) error {
	aw.documents++
	return aw.write(documentRecord{D: doc})
}

// Close writes the end record and flushes; an archive without it is incomplete.
func (aw *archiveWriter) Close() error {
	if err := aw.write(endRecord{End: true, Collections: aw.collections, Documents: aw.documents}); err != nil {
		return err
	}
	return aw.w.Flush()
}

// archiveVisitor receives an archive's records in order.
type archiveVisitor interface {
	Collection(collectionRecord) error
	Document(bson.Raw) error
}

// readArchive reads a whole archive, handing each record to v, and fails on anything that is not
// a complete archive of this format: a bad header, a malformed record, a document before any
// collection, counts that differ from the end record, bytes after it, or no end at all.
func readArchive(r io.Reader, v archiveVisitor) (collections, documents int64, err error) {
	br := bufio.NewReaderSize(r, 1<<20)
	next := func() (bson.Raw, error) {
		var size [4]byte
		if _, err := io.ReadFull(br, size[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return nil, io.EOF
			}
			return nil, fmt.Errorf("the archive ends inside a record: %w", err)
		}
		n := binary.LittleEndian.Uint32(size[:])
		if n < 5 || n > maxRecord {
			return nil, fmt.Errorf("a record claims %d bytes: this is not a skypanel-mongo archive, or it is damaged", n)
		}
		raw := make([]byte, n)
		copy(raw, size[:])
		if _, err := io.ReadFull(br, raw[4:]); err != nil {
			return nil, fmt.Errorf("the archive ends inside a record: %w", err)
		}
		if err := bson.Raw(raw).Validate(); err != nil {
			return nil, fmt.Errorf("a damaged record: %w", err)
		}
		return raw, nil
	}

	first, err := next()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return 0, 0, errors.New("the archive is empty")
		}
		return 0, 0, err
	}
	var header archiveHeader
	if err := bson.Unmarshal(first, &header); err != nil || header.Format != archiveFormat {
		return 0, 0, errors.New("this is not a skypanel-mongo archive (no header)")
	}
	if header.Version != archiveVersion {
		return 0, 0, fmt.Errorf("archive version %d is not supported (this tool reads version %d)", header.Version, archiveVersion)
	}

	inCollection := false
	for {
		raw, err := next()
		if errors.Is(err, io.EOF) {
			return 0, 0, errors.New("the archive is incomplete: it has no end record")
		}
		if err != nil {
			return 0, 0, err
		}
		switch {
		case hasKey(raw, "d"):
			if !inCollection {
				return 0, 0, errors.New("a document comes before any collection")
			}
			doc, ok := raw.Lookup("d").DocumentOK()
			if !ok {
				return 0, 0, errors.New("a document record holds no document")
			}
			documents++
			if err := v.Document(doc); err != nil {
				return 0, 0, err
			}
		case hasKey(raw, "collection"):
			var rec collectionRecord
			if err := bson.Unmarshal(raw, &rec); err != nil || rec.Collection == "" {
				return 0, 0, errors.New("a collection record without a name")
			}
			inCollection = true
			collections++
			if err := v.Collection(rec); err != nil {
				return 0, 0, err
			}
		case hasKey(raw, "end"):
			var end endRecord
			if err := bson.Unmarshal(raw, &end); err != nil || !end.End {
				return 0, 0, errors.New("a damaged end record")
			}
			if end.Collections != collections || end.Documents != documents {
				return 0, 0, fmt.Errorf("the archive holds %d collections and %d documents, but its end record says %d and %d",
					collections, documents, end.Collections, end.Documents)
			}
			if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
				return 0, 0, errors.New("bytes follow the archive's end record")
			}
			return collections, documents, nil
		default:
			return 0, 0, errors.New("a record of an unknown kind")
		}
	}
}

func hasKey(raw bson.Raw, key string) bool {
	_, err := raw.LookupErr(key)
	return err == nil
}

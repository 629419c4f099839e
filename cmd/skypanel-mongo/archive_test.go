package main

import (
	"bytes"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
)

type recorded struct {
	collections []string
	documents   []string
}

func (r *recorded) Collection(c collectionRecord) error {
	r.collections = append(r.collections, c.Collection)
	return nil
}

func (r *recorded) Document(d bson.Raw) error {
	r.documents = append(r.documents, d.Lookup("v").StringValue())
	return nil
}

// sampleArchive is two collections, the first with two documents and an index, the second empty.
func sampleArchive(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	aw, err := newArchiveWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	index, _ := bson.Marshal(bson.D{{Key: "key", Value: bson.D{{Key: "v", Value: 1}}}, {Key: "name", Value: "v_1"}, {Key: "unique", Value: true}})
	must(t, aw.Collection(collectionRecord{Collection: "items", Indexes: []bson.Raw{index}}))
	for _, v := range []string{"alpha", "bravo"} {
		doc, _ := bson.Marshal(bson.D{{Key: "_id", Value: v}, {Key: "v", Value: v}})
		must(t, aw.Document(doc))
	}
	must(t, aw.Collection(collectionRecord{Collection: "empty"}))
	must(t, aw.Close())
	return buf.Bytes()
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestArchiveRoundTrip(t *testing.T) {
	var got recorded
	colls, docs, err := readArchive(bytes.NewReader(sampleArchive(t)), &got)
	if err != nil {
		t.Fatal(err)
	}
	if colls != 2 || docs != 2 || strings.Join(got.collections, ",") != "items,empty" || strings.Join(got.documents, ",") != "alpha,bravo" {
		t.Fatalf("read %d collections %v, %d documents %v", colls, got.collections, docs, got.documents)
	}
}

// Whatever is wrong with an archive, the restore learns it before it drops anything: every
// damage below fails the read.
func TestArchiveRefusesWhatIsNotWhole(t *testing.T) {
	good := sampleArchive(t)
	doc, _ := bson.Marshal(documentRecord{D: mustMarshal(t, bson.D{{Key: "v", Value: "x"}})})
	header, _ := bson.Marshal(archiveHeader{Format: archiveFormat, Version: archiveVersion})
	endAt := bytes.LastIndex(good, mustMarshal(t, endRecord{End: true, Collections: 2, Documents: 2}))
	if endAt < 0 {
		t.Fatal("no end record in the sample")
	}
	// A record's length changed: the reader loses the record boundaries. (A changed byte inside a
	// value is what the backup's SHA-256 catches before an archive reaches the tool.)
	flipped := bytes.Clone(good)
	flipped[len(header)] ^= 0x40

	cases := map[string]struct {
		archive []byte
		want    string
	}{
		"empty":                 {nil, "empty"},
		"not an archive":        {[]byte("PGDMP custom format dump"), "not a skypanel-mongo archive"},
		"truncated in a record": {good[:len(good)-3], "ends inside a record"},
		"no end record":         {good[:endAt], "no end record"},
		"a document spliced in": {append(append(bytes.Clone(good[:endAt]), doc...), good[endAt:]...), "end record says"},
		"bytes after the end":   {append(bytes.Clone(good), 0), "follow"},
		"a document first":      {append(bytes.Clone(header), doc...), "before any collection"},
		"a damaged length":      {flipped, ""},
		"another version":       {mustMarshal(t, archiveHeader{Format: archiveFormat, Version: 2}), "version 2"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, _, err := readArchive(bytes.NewReader(c.archive), nopVisitor{})
			if err == nil {
				t.Fatal("the archive was accepted")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not say %q", err, c.want)
			}
		})
	}
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	raw, err := bson.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

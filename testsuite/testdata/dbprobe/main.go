// dbprobe is the app the managed-database e2e tests link databases to: a static binary (FROM
// scratch) that serves on $PORT and reaches its databases only through the variables the link
// injects, as a customer's app would.
//
//	/pg/put?v=X    inserts X into table items of $DATABASE_URL (PostgreSQL), creating the table
//	/pg/list       the values of items, one per line, sorted
//	/pg/clear      deletes every row of items
//	/my/put?v=X, /my/list, /my/clear   the same through $DATABASE_URL (MySQL/MariaDB)
//	/redis/set?k=K&v=V, /redis/get?k=K   through $REDIS_URL (RESP spoken by hand)
//	/mongo/put?v=X, /mongo/list, /mongo/clear   collection items of $MONGODB_URI (the Go driver)
//	/probe?to=HOST:PORT  tries a TCP connection and says what happened
//
// A variable that is not set answers 503 naming it.
package main

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
)

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "dbprobe") })
	http.HandleFunc("/pg/put", func(w http.ResponseWriter, r *http.Request) {
		conn, ok := pg(w, r)
		if !ok {
			return
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(r.Context(), `CREATE TABLE IF NOT EXISTS items (v text NOT NULL)`); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if _, err := conn.Exec(r.Context(), `INSERT INTO items (v) VALUES ($1)`, r.URL.Query().Get("v")); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, "ok")
	})
	http.HandleFunc("/pg/clear", func(w http.ResponseWriter, r *http.Request) {
		conn, ok := pg(w, r)
		if !ok {
			return
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(r.Context(), `DELETE FROM items`); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, "ok")
	})
	http.HandleFunc("/pg/list", func(w http.ResponseWriter, r *http.Request) {
		conn, ok := pg(w, r)
		if !ok {
			return
		}
		defer conn.Close(context.Background())
		rows, err := conn.Query(r.Context(), `SELECT v FROM items ORDER BY v`)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		values, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, strings.Join(values, "\n"))
	})
	http.HandleFunc("/my/put", func(w http.ResponseWriter, r *http.Request) {
		conn, ok := mysqlDB(w)
		if !ok {
			return
		}
		defer conn.Close()
		if _, err := conn.ExecContext(r.Context(), `CREATE TABLE IF NOT EXISTS items (v varchar(200) NOT NULL)`); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if _, err := conn.ExecContext(r.Context(), `INSERT INTO items (v) VALUES (?)`, r.URL.Query().Get("v")); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, "ok")
	})
	http.HandleFunc("/my/clear", func(w http.ResponseWriter, r *http.Request) {
		conn, ok := mysqlDB(w)
		if !ok {
			return
		}
		defer conn.Close()
		if _, err := conn.ExecContext(r.Context(), `DELETE FROM items`); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, "ok")
	})
	http.HandleFunc("/my/list", func(w http.ResponseWriter, r *http.Request) {
		conn, ok := mysqlDB(w)
		if !ok {
			return
		}
		defer conn.Close()
		rows, err := conn.QueryContext(r.Context(), `SELECT v FROM items ORDER BY v`)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer rows.Close()
		var values []string
		for rows.Next() {
			var v string
			if err := rows.Scan(&v); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			values = append(values, v)
		}
		fmt.Fprint(w, strings.Join(values, "\n"))
	})
	http.HandleFunc("/mongo/put", func(w http.ResponseWriter, r *http.Request) {
		withMongo(w, r, func(items *mongo.Collection) (string, error) {
			_, err := items.InsertOne(r.Context(), bson.D{{Key: "v", Value: r.URL.Query().Get("v")}})
			return "ok", err
		})
	})
	http.HandleFunc("/mongo/clear", func(w http.ResponseWriter, r *http.Request) {
		withMongo(w, r, func(items *mongo.Collection) (string, error) {
			_, err := items.DeleteMany(r.Context(), bson.D{})
			return "ok", err
		})
	})
	http.HandleFunc("/mongo/list", func(w http.ResponseWriter, r *http.Request) {
		withMongo(w, r, func(items *mongo.Collection) (string, error) {
			cursor, err := items.Find(r.Context(), bson.D{}, options.Find().SetSort(bson.D{{Key: "v", Value: 1}}))
			if err != nil {
				return "", err
			}
			var docs []struct {
				V string `bson:"v"`
			}
			if err := cursor.All(r.Context(), &docs); err != nil {
				return "", err
			}
			values := make([]string, len(docs))
			for i, d := range docs {
				values[i] = d.V
			}
			return strings.Join(values, "\n"), nil
		})
	})
	http.HandleFunc("/redis/set", func(w http.ResponseWriter, r *http.Request) {
		reply, err := redis(r, "SET", r.URL.Query().Get("k"), r.URL.Query().Get("v"))
		answer(w, reply, err)
	})
	http.HandleFunc("/redis/get", func(w http.ResponseWriter, r *http.Request) {
		reply, err := redis(r, "GET", r.URL.Query().Get("k"))
		answer(w, reply, err)
	})
	http.HandleFunc("/redis/keys", func(w http.ResponseWriter, r *http.Request) {
		reply, err := redis(r, "KEYS", "*")
		if err == nil {
			keys := strings.Split(reply, "\n")
			sort.Strings(keys)
			reply = strings.Join(keys, "\n")
		}
		answer(w, reply, err)
	})
	http.HandleFunc("/probe", func(w http.ResponseWriter, r *http.Request) {
		conn, err := net.DialTimeout("tcp", r.URL.Query().Get("to"), 3*time.Second)
		if err != nil {
			fmt.Fprintf(w, "refused: %v", err)
			return
		}
		conn.Close()
		fmt.Fprint(w, "connected")
	})
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	if err := http.ListenAndServe(":"+port, nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func answer(w http.ResponseWriter, reply string, err error) {
	var unset *unsetError
	switch {
	case errors.As(err, &unset):
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
	case err != nil:
		http.Error(w, err.Error(), http.StatusInternalServerError)
	default:
		fmt.Fprint(w, reply)
	}
}

type unsetError struct{ name string }

func (e *unsetError) Error() string { return e.name + " is not set" }

// withMongo runs f on collection items of $MONGODB_URI's database.
func withMongo(w http.ResponseWriter, r *http.Request, f func(*mongo.Collection) (string, error)) {
	uri := os.Getenv("MONGODB_URI")
	if uri == "" {
		answer(w, "", &unsetError{name: "MONGODB_URI"})
		return
	}
	cs, err := mongoDatabase(uri)
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 20*time.Second)
	defer cancel()
	client, err := mongo.Connect(ctx, options.Client().ApplyURI(uri).SetServerSelectionTimeout(10*time.Second))
	if err != nil {
		http.Error(w, "connect: "+err.Error(), http.StatusBadGateway)
		return
	}
	defer client.Disconnect(context.Background()) //nolint:errcheck
	reply, err := f(client.Database(cs).Collection("items"))
	answer(w, reply, err)
}

// mongoDatabase is the database a mongodb:// URI names.
func mongoDatabase(uri string) (string, error) {
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "mongodb" || strings.Trim(u.Path, "/") == "" {
		return "", errors.New("MONGODB_URI is not a mongodb:// URL with a database")
	}
	return strings.Trim(u.Path, "/"), nil
}

// mysqlDB opens $DATABASE_URL (mysql://user:password@host:port/database) with the MySQL driver.
func mysqlDB(w http.ResponseWriter) (*sql.DB, bool) {
	raw := os.Getenv("DATABASE_URL")
	if raw == "" {
		http.Error(w, "DATABASE_URL is not set", http.StatusServiceUnavailable)
		return nil, false
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "mysql" {
		http.Error(w, "DATABASE_URL is not a mysql:// URL", http.StatusServiceUnavailable)
		return nil, false
	}
	cfg := mysql.NewConfig()
	cfg.User = u.User.Username()
	cfg.Passwd, _ = u.User.Password()
	cfg.Net, cfg.Addr, cfg.DBName = "tcp", u.Host, strings.TrimPrefix(u.Path, "/")
	cfg.Timeout = 10 * time.Second
	conn, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		http.Error(w, "open: "+err.Error(), http.StatusBadGateway)
		return nil, false
	}
	return conn, true
}

func pg(w http.ResponseWriter, r *http.Request) (*pgx.Conn, bool) {
	dsn := os.Getenv("DATABASE_URL")
	if dsn == "" {
		http.Error(w, "DATABASE_URL is not set", http.StatusServiceUnavailable)
		return nil, false
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		http.Error(w, "connect: "+err.Error(), http.StatusBadGateway)
		return nil, false
	}
	return conn, true
}

// redis sends one command to $REDIS_URL (redis://:password@host:port/db) and reads its reply:
// a simple string, an integer, a bulk string, or an array of bulk strings (one per line).
func redis(r *http.Request, args ...string) (string, error) {
	raw := os.Getenv("REDIS_URL")
	if raw == "" {
		return "", &unsetError{name: "REDIS_URL"}
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("REDIS_URL: %w", err)
	}
	conn, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(r.Context(), "tcp", u.Host)
	if err != nil {
		return "", fmt.Errorf("connect: %w", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	rd := bufio.NewReader(conn)
	if password, ok := u.User.Password(); ok {
		if _, err := command(conn, rd, "AUTH", password); err != nil {
			return "", err
		}
	}
	return command(conn, rd, args...)
}

func command(conn net.Conn, rd *bufio.Reader, args ...string) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := conn.Write([]byte(b.String())); err != nil {
		return "", err
	}
	return reply(rd)
}

func reply(rd *bufio.Reader) (string, error) {
	line, err := rd.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("empty reply")
	}
	switch line[0] {
	case '+', ':':
		return line[1:], nil
	case '-':
		return "", errors.New(line[1:])
	case '$':
		n, _ := strconv.Atoi(line[1:])
		if n < 0 {
			return "(nil)", nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(rd, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	case '*':
		n, _ := strconv.Atoi(line[1:])
		var items []string
		for i := 0; i < n; i++ {
			item, err := reply(rd)
			if err != nil {
				return "", err
			}
			items = append(items, item)
		}
		return strings.Join(items, "\n"), nil
	}
	return "", fmt.Errorf("unexpected reply %q", line)
}

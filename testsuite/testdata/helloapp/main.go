// helloapp is the app the e2e tests deploy: a static binary (FROM scratch, no registry) that
// answers every request with the contents of /message.txt, on $PORT as the platform asks, and
// /env/NAME with the value of the environment variable NAME.
// Started with the argument "crash" it exits at once, like an app with a broken start command;
// with "serve-then-exit <duration>" it serves for that long, then exits with code 4, like an app
// that keeps dying in production.
// "probe HOST:PORT..." (a build's RUN step) and /probe?to=HOST:PORT (a running app) try to open
// a TCP connection and say what happened; HOST "gateway" is the container's default gateway,
// the host as the container sees it. probe exits 0 only when every connection opened.
// "alloc MIB" allocates and touches that much memory, then exits 0: a build step that needs
// more memory than it is given. "spew MIB" prints that many MiB of numbered lines: a build
// step with a runaway log.
package main

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"time"
)

func main() {
	if len(os.Args) > 2 && os.Args[1] == "alloc" {
		var mib int
		fmt.Sscan(os.Args[2], &mib)
		held := make([][]byte, 0, mib)
		for i := 0; i < mib; i++ {
			chunk := make([]byte, 1<<20)
			for j := range chunk {
				chunk[j] = byte(j)
			}
			held = append(held, chunk)
		}
		fmt.Printf("allocated %d MiB in %d chunks\n", mib, len(held))
		return
	}
	if len(os.Args) > 2 && os.Args[1] == "spew" {
		var mib int
		fmt.Sscan(os.Args[2], &mib)
		out := bufio.NewWriterSize(os.Stdout, 1<<20)
		filler := strings.Repeat("z", 4086)
		for i := 0; i < mib<<20/4096; i++ {
			fmt.Fprintf(out, "%08d %s\n", i, filler)
		}
		out.Flush()
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "probe" {
		ok := true
		for _, target := range os.Args[2:] {
			result := probe(target)
			fmt.Printf("probe %s: %s\n", target, result)
			ok = ok && result == "connected"
		}
		if !ok {
			os.Exit(1)
		}
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "crash" {
		fmt.Println("boom: crashing on purpose before listening")
		os.Exit(3)
	}
	if len(os.Args) > 2 && os.Args[1] == "serve-then-exit" {
		lifetime, err := time.ParseDuration(os.Args[2])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		time.AfterFunc(lifetime, func() {
			fmt.Println("out of memory (pretend): giving up after " + lifetime.String())
			os.Exit(4)
		})
	}
	port := os.Getenv("PORT")
	if port == "" {
		fmt.Fprintln(os.Stderr, "PORT is not set")
		os.Exit(1)
	}
	instance, _ := os.Hostname() // the container's id: tells the instances behind nginx apart
	// /env/NAME echoes the variable NAME: how the tests see what the platform gave the app.
	http.HandleFunc("/env/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("X-Instance", instance)
		fmt.Fprint(w, os.Getenv(r.URL.Path[len("/env/"):]))
	})
	http.HandleFunc("/probe", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprint(w, probe(r.URL.Query().Get("to")))
	})
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		msg, err := os.ReadFile("/message.txt")
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("X-Instance", instance)
		w.Write(msg) //nolint:errcheck
	})
	fmt.Println("helloapp listening on :" + port)
	if err := http.ListenAndServe(":"+port, nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// probe opens a TCP connection to target and answers "connected" or why it could not.
func probe(target string) string {
	host, port, err := net.SplitHostPort(target)
	if err != nil {
		return "bad target: " + err.Error()
	}
	if host == "gateway" {
		gw, err := defaultGateway()
		if err != nil {
			return "no gateway: " + err.Error()
		}
		host = gw.String()
	}
	conn, err := net.DialTimeout("tcp", net.JoinHostPort(host, port), 5*time.Second)
	if err != nil {
		return "refused: " + err.Error()
	}
	conn.Close()
	return "connected"
}

// defaultGateway reads the default route's gateway from /proc/net/route (little-endian hex).
func defaultGateway() (netip.Addr, error) {
	f, err := os.Open("/proc/net/route")
	if err != nil {
		return netip.Addr{}, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 3 || fields[1] != "00000000" {
			continue
		}
		raw, err := hex.DecodeString(fields[2])
		if err != nil || len(raw) != 4 {
			continue
		}
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], binary.LittleEndian.Uint32(raw))
		return netip.AddrFrom4(a), nil
	}
	return netip.Addr{}, fmt.Errorf("no default route")
}

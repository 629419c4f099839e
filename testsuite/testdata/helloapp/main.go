// helloapp is the app the e2e tests deploy: a static binary (FROM scratch, no registry) that
// answers every request with the contents of /message.txt, on $PORT as the platform asks, and
// /env/NAME with the value of the environment variable NAME.
// Started with the argument "crash" it exits at once, like an app with a broken start command;
// with "serve-then-exit <duration>" it serves for that long, then exits with code 4, like an app
// that keeps dying in production.
package main

import (
	"fmt"
	"net/http"
	"os"
	"time"
)

func main() {
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

// Command logstorm hangs up on a server mid-answer, over and over, from
// several connections at once: the storm of scrape timeouts that must not
// flood the exporter's log. Run it against an exporter and count the lines
// the exporter logs meanwhile:
//
//	go run ./tools/logstorm -addr 127.0.0.1:9917 -c 50 -d 20s
package main

import (
	"flag"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/smokemon/smokemon/internal/testutil"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9917", "server address")
	path := flag.String("path", "/metrics", "path to request")
	conns := flag.Int("c", 50, "connections at once")
	dur := flag.Duration("d", 20*time.Second, "how long")
	keep := flag.Int("keep", 4096, "bytes read before hanging up")
	flag.Parse()
	var done, failed atomic.Int64
	end := time.Now().Add(*dur)
	var wg sync.WaitGroup
	for range *conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(end) {
				if _, err := testutil.HangUp(*addr, *path, *keep); err != nil {
					failed.Add(1)
					time.Sleep(10 * time.Millisecond)
					continue
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	fmt.Printf("%d hang-ups in %s (%d requests failed before %d bytes)\n", done.Load(), *dur, failed.Load(), *keep)
	if done.Load() == 0 {
		os.Exit(1)
	}
}

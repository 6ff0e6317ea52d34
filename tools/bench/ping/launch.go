package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/smokemon/smokemon/internal/testutil"
)

// launch starts one tool on addrs.
func launch(o *options, k kind, addrs []string, round int) (*running, error) {
	r := &running{kind: k}
	switch k {
	case kSmokemon, kSmokemonAll:
		port, err := testutil.LoopbackPort()
		if err != nil {
			return nil, err
		}
		cfg := filepath.Join(o.tmp, fmt.Sprintf("smokemon-%d-%d.yml", round, k))
		var b strings.Builder
		b.WriteString("global:\n  interval: 1s\n  timeout: 1s\n  packet_size: 56\nping:\n  targets:\n")
		for _, a := range addrs {
			fmt.Fprintf(&b, "    - host: %s\n", a)
		}
		if err := os.WriteFile(cfg, []byte(b.String()), 0o644); err != nil {
			return nil, err
		}
		argv := []string{o.smokemonBin, "--config.file", cfg, "--web.listen-address", fmt.Sprintf("127.0.0.1:%d", port),
			"--ping.histogram", o.histogram}
		if k == kSmokemon {
			argv = append(argv, "--collector.disable-defaults", "--collector.ping")
		}
		r.url = fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
		r.family = smokemonFamily
		r.p, err = start(kindName[k], io.Discard, argv...)
		return r, err
	case kFloor, kFloorCollect:
		port, err := testutil.LoopbackPort()
		if err != nil {
			return nil, err
		}
		r.url = fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
		argv := []string{o.floorBin, "--web.listen-address", fmt.Sprintf("127.0.0.1:%d", port)}
		if k == kFloorCollect {
			argv = append(argv, "--scrape.collect")
		}
		r.p, err = start(kindName[k], io.Discard, argv...)
		return r, err
	case kSmokeping:
		port, err := testutil.LoopbackPort()
		if err != nil {
			return nil, err
		}
		// Its packaged config pings localhost; an empty one keeps the target
		// set to exactly addrs.
		cfg := filepath.Join(o.tmp, "smokeping_prober.yml")
		if err := os.WriteFile(cfg, []byte("targets: []\n"), 0o644); err != nil {
			return nil, err
		}
		argv := append([]string{o.smokepingBin, "--config.file", cfg, "--web.listen-address", fmt.Sprintf("127.0.0.1:%d", port),
			"--ping.interval", "1s", "--ping.size", "56", "--privileged"}, addrs...)
		r.url = fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
		r.family = smokepingFamily
		r.p, err = start(kindName[k], io.Discard, argv...)
		return r, err
	case kFping:
		// -i is the gap between any two sends. smokemon spreads its targets
		// evenly over the period, so fping gets nearly the same spacing: a
		// burst (fping's default 10 ms apart, then idle) would send most
		// probes from a CPU still warm from the last one and make fping's
		// RTTs look shorter than the same loopback path measured evenly.
		// 90 % of 1000/N keeps each target at 1 Hz: at exactly 1000/N a
		// slow send would push a round past the 1000 ms period.
		iv := 900 / float64(len(addrs))
		argv := append([]string{o.fpingBin, "-l", "-D", "-p", "1000", "-i", strconv.FormatFloat(iv, 'f', -1, 64), "-b", "56"}, addrs...)
		pr, pw, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		r.fping = newFpingLog()
		r.p, err = start(kindName[k], pw, argv...)
		pw.Close()
		if err != nil {
			pr.Close()
			return nil, err
		}
		go func() {
			r.fping.consume(pr)
			pr.Close()
		}()
		return r, nil
	}
	return nil, fmt.Errorf("unknown tool %d", k)
}

// scrapeText times one scrape to the last byte, uncompressed text format.
func scrapeText(c *http.Client, url string) (time.Duration, int, error) {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Accept", textAccept)
	t := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	dt := time.Since(t)
	if err != nil {
		return 0, 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return dt, int(n), nil
}

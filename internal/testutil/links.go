package testutil

import (
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

var pageLinks = regexp.MustCompile(`(?:href|src)="([^"]+)"`)

// CheckLinks follows every link (href, src) of the page at base+"/" that
// stays on the server and fails the test on each that does not answer
// 200. Links whose path starts with one of skip are left alone (another
// test owns them); links to other hosts are not followed.
func CheckLinks(t testing.TB, c *http.Client, base string, skip ...string) {
	t.Helper()
	code, page, err := fetch(c, base+"/")
	if err != nil || code != 200 {
		t.Fatalf("landing page: %d %v", code, err)
	}
	b, _ := url.Parse(base + "/")
	followed := 0
links:
	for _, m := range pageLinks.FindAllStringSubmatch(page, -1) {
		u, err := b.Parse(m[1])
		if err != nil {
			t.Errorf("link %q: %v", m[1], err)
			continue
		}
		if u.Host != b.Host {
			continue
		}
		for _, p := range skip {
			if strings.HasPrefix(u.Path, p) {
				continue links
			}
		}
		followed++
		if code, _, err := fetch(c, u.String()); err != nil || code != 200 {
			t.Errorf("landing page link %s: %d %v", m[1], code, err)
		}
	}
	if followed == 0 {
		t.Errorf("no link followed on the landing page:\n%s", page)
	}
}

func fetch(c *http.Client, u string) (int, string, error) {
	resp, err := c.Get(u)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

package dnsmsg

import (
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// miekg/dns is the independent implementation the wire format is checked
// against: it reads our queries and writes the replies we parse.

func TestQueryAsReadByAnotherImplementation(t *testing.T) {
	for _, edns := range []bool{false, true} {
		q := NewQuery(0xbeef, "Example.NET", 28)
		q.RecursionDesired, q.EDNS = false, edns
		wire, err := q.Pack()
		if err != nil {
			t.Fatal(err)
		}
		m := new(dns.Msg)
		if err := m.Unpack(wire); err != nil {
			t.Fatalf("edns %v: miekg cannot read our query: %v", edns, err)
		}
		if m.Id != 0xbeef || m.RecursionDesired || m.Response || len(m.Question) != 1 ||
			m.Question[0].Name != "Example.NET." || m.Question[0].Qtype != dns.TypeAAAA || m.Question[0].Qclass != dns.ClassINET {
			t.Errorf("edns %v: read back as %v", edns, m)
		}
		opt := m.IsEdns0()
		switch {
		case !edns && opt != nil:
			t.Errorf("an OPT record without EDNS: %v", opt)
		case edns && (opt == nil || opt.UDPSize() != UDPSize || opt.Do()):
			t.Errorf("EDNS: OPT record %v, want UDP size %d, DO clear", opt, UDPSize)
		}
	}
	if _, err := NewQuery(1, "a..b", 1).Pack(); err == nil {
		t.Error("a name with an empty label packed")
	}
}

func reply(t testing.TB, id uint16, name string, qtype uint16, edit func(*dns.Msg)) []byte {
	t.Helper()
	q := new(dns.Msg)
	q.SetQuestion(name, qtype)
	q.Id = id
	m := new(dns.Msg)
	m.SetReply(q)
	if edit != nil {
		edit(m)
	}
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func rr(tb testing.TB, s string) dns.RR {
	tb.Helper()
	r, err := dns.NewRR(s)
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

func TestParseAnotherImplementationsReplies(t *testing.T) {
	b := reply(t, 7, "www.example.com.", dns.TypeA, func(m *dns.Msg) {
		m.Answer = []dns.RR{
			rr(t, "www.example.com. 60 IN CNAME web.example.com."),
			rr(t, "web.example.com. 60 IN A 192.0.2.7"),
			rr(t, "web.example.com. 60 IN AAAA 2001:db8::7"),
			rr(t, "web.example.com. 60 IN MX 10 mail.example.com."),
		}
		m.Ns = []dns.RR{rr(t, "example.com. 60 IN NS ns.example.com.")}
		m.Extra = []dns.RR{rr(t, "ns.example.com. 60 IN A 192.0.2.53")}
	})
	r, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Addr{netip.MustParseAddr("192.0.2.7"), netip.MustParseAddr("2001:db8::7")}
	if r.ID != 7 || r.Rcode != RcodeSuccess || r.Truncated || r.Answers != 4 || len(r.Addrs) != 2 || r.Addrs[0] != want[0] || r.Addrs[1] != want[1] {
		t.Errorf("parsed %+v, want id 7, NOERROR, 4 answers, addresses %v (the additional section's A is not an answer)", r, want)
	}
	if !r.Matches(Query{ID: 7, Question: Question{Name: "WWW.example.COM.", Type: 1}}) {
		t.Error("the reply does not match its query with the name in another case")
	}
	for _, q := range []Query{{ID: 8, Question: Question{"www.example.com.", 1}}, {ID: 7, Question: Question{"www.example.com.", 28}}, {ID: 7, Question: Question{"example.com.", 1}}} {
		if r.Matches(q) {
			t.Errorf("the reply matches %+v", q)
		}
	}

	// An extended rcode lives in the OPT record's upper bits.
	b = reply(t, 9, "example.com.", dns.TypeA, func(m *dns.Msg) {
		m.SetEdns0(1232, false)
		m.Rcode = dns.RcodeBadVers
	})
	if r, err := Parse(b); err != nil || r.Rcode != 16 || RcodeString(r.Rcode) != "BADVERS" {
		t.Errorf("extended rcode: %+v, %v; want 16 (BADVERS)", r, err)
	}
	b = reply(t, 9, "example.com.", dns.TypeA, func(m *dns.Msg) { m.Rcode = dns.RcodeNameError })
	if r, err := Parse(b); err != nil || RcodeString(r.Rcode) != "NXDOMAIN" {
		t.Errorf("NXDOMAIN: %+v, %v", r, err)
	}

	// A truncated reply may be cut anywhere after its question.
	b = reply(t, 10, "example.com.", dns.TypeTXT, func(m *dns.Msg) { m.Truncated = true })
	if r, err := Parse(append(b, 0xff)); err != nil || !r.Truncated {
		t.Errorf("truncated: %+v, %v", r, err)
	}

	q, _ := NewQuery(3, "example.com", 1).Pack()
	if _, err := Parse(q); err == nil {
		t.Error("a query parsed as a reply")
	}
	if _, err := Parse(b[:5]); err == nil {
		t.Error("five bytes parsed as a reply")
	}
}

// Over UDP, datagrams that are not the answer are skipped; over TCP the
// length prefix frames the messages both ways.
func TestExchange(t *testing.T) {
	q := NewQuery(0x1234, "lab.example", dns.TypeA)
	good := reply(t, q.ID, q.Name, q.Type, func(m *dns.Msg) { m.Answer = []dns.RR{rr(t, "lab.example. 1 IN A 198.18.0.9")} })

	otherID, otherName := reply(t, q.ID+1, q.Name, q.Type, nil), reply(t, q.ID, "other.example.", q.Type, nil)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go func() {
		buf := make([]byte, 2048)
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		if _, err := Parse(append([]byte(nil), buf[:n]...)); err == nil {
			return // a query must not parse as a reply: the test below then times out
		}
		pc.WriteTo(otherID, from) // another query's answer
		pc.WriteTo(otherName, from)
		pc.WriteTo([]byte("not dns"), from)
		pc.WriteTo(good, from)
	}()
	conn, err := net.Dial("udp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	r, err := Exchange(conn, false, q)
	if err != nil || len(r.Addrs) != 1 || r.Addrs[0].String() != "198.18.0.9" {
		t.Fatalf("udp: %+v, %v", r, err)
	}

	// An answer with the query's ID that cannot be read ends the wait.
	go func() {
		buf := make([]byte, 2048)
		if _, from, err := pc.ReadFrom(buf); err == nil {
			pc.WriteTo(good[:len(good)-2], from)
		}
	}()
	start := time.Now()
	if r, err := Exchange(conn, false, q); err == nil || !strings.Contains(err.Error(), "malformed") || time.Since(start) > 4*time.Second {
		t.Errorf("udp, a cut answer: %+v, %v after %v; want a malformed-answer error, not the deadline", r, err, time.Since(start))
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan *dns.Msg, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		var l [2]byte
		io.ReadFull(c, l[:])
		msg := make([]byte, binary.BigEndian.Uint16(l[:]))
		io.ReadFull(c, msg)
		m := new(dns.Msg)
		if m.Unpack(msg) == nil {
			got <- m
		}
		c.Write(binary.BigEndian.AppendUint16(nil, uint16(len(good))))
		time.Sleep(10 * time.Millisecond) // the answer in two segments
		c.Write(good)
	}()
	conn, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	r, err = Exchange(conn, true, q)
	if err != nil || len(r.Addrs) != 1 {
		t.Fatalf("tcp: %+v, %v", r, err)
	}
	select {
	case m := <-got:
		if m.Id != q.ID || m.Question[0].Name != "lab.example." {
			t.Errorf("tcp: the server read %v", m)
		}
	default:
		t.Error("tcp: the server could not read the query")
	}
}

func TestNames(t *testing.T) {
	for name, want := range types {
		if got, ok := ParseType(name); !ok || got != want {
			t.Errorf("ParseType(%q) = %d, %v; want %d", name, got, ok, want)
		}
		if TypeString(want) != name {
			t.Errorf("TypeString(%d) = %q, want %q", want, TypeString(want), name)
		}
		if dns.TypeToString[want] != name {
			t.Errorf("%s is type %d here and %q to miekg/dns", name, want, dns.TypeToString[want])
		}
	}
	for _, c := range []struct {
		in   string
		want uint16
		ok   bool
	}{{"aaaa", 28, true}, {"TYPE65534", 65534, true}, {"type99", 99, true}, {"TYPE0", 0, false}, {"TYPE41", 0, false},
		{"OPT", 0, false}, {"TYPE65536", 0, false}, {"NOPE", 0, false}, {"", 0, false}} {
		if got, ok := ParseType(c.in); got != c.want || ok != c.ok {
			t.Errorf("ParseType(%q) = %d, %v; want %d, %v", c.in, got, ok, c.want, c.ok)
		}
	}
	if TypeString(65534) != "TYPE65534" {
		t.Errorf("TypeString(65534) = %q", TypeString(65534))
	}
	for rc, name := range rcodes {
		if got, ok := ParseRcode(name); !ok || got != rc {
			t.Errorf("ParseRcode(%q) = %d, %v", name, got, ok)
		}
		if m := dns.RcodeToString[rc]; m != name && !(rc == 16 && m == "BADSIG") && !(rc == 11 && m == "") {
			t.Errorf("rcode %d is %s here and %q to miekg/dns", rc, name, m)
		}
	}
	for _, c := range []struct {
		in   string
		want int
		ok   bool
	}{{"nxdomain", 3, true}, {"15", 15, true}, {"4096", 0, false}, {"-1", 0, false}, {"NOSUCH", 0, false}} {
		if got, ok := ParseRcode(c.in); got != c.want || ok != c.ok {
			t.Errorf("ParseRcode(%q) = %d, %v; want %d, %v", c.in, got, ok, c.want, c.ok)
		}
	}
	if RcodeString(15) != "15" {
		t.Errorf("RcodeString(15) = %q", RcodeString(15))
	}
}

// FuzzParse: whatever a server sends, Parse returns an error or a reply whose
// addresses are among its answers; it never panics.
func FuzzParse(f *testing.F) {
	f.Add([]byte{})
	q, _ := NewQuery(1, "example.com", 1).Pack()
	f.Add(q)
	for _, edit := range []func(*dns.Msg){
		nil,
		func(m *dns.Msg) {
			m.Answer = []dns.RR{rr(f, "example.com. 1 IN A 192.0.2.1"), rr(f, "example.com. 1 IN AAAA ::1")}
		},
		func(m *dns.Msg) { m.SetEdns0(4096, true); m.Rcode = dns.RcodeBadCookie },
		func(m *dns.Msg) { m.Truncated = true },
	} {
		f.Add(reply(f, 1, "example.com.", dns.TypeA, edit))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Parse(b)
		if err != nil {
			return
		}
		if len(r.Addrs) > r.Answers {
			t.Errorf("%d addresses from %d answers", len(r.Addrs), r.Answers)
		}
		if r.Truncated && r.Answers != 0 {
			t.Errorf("a truncated reply counted %d answers", r.Answers)
		}
	})
}

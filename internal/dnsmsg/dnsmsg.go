// Package dnsmsg is the DNS client the probes need: a question out, and of
// the answer what they report (rcode, truncation, answer count, addresses).
// It stands on golang.org/x/net/dns/dnsmessage. The exporter used
// github.com/miekg/dns before; its zone parser, DNSSEC and server came along
// with the client and cost 0.7 MB of binary, all of it resident from start-up
// on an exporter that asks a few questions a minute.
package dnsmsg

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"

	"golang.org/x/net/dns/dnsmessage"
)

// UDPSize is the payload size an EDNS query advertises: the DNS flag day 2020
// size, which keeps answers clear of IP fragmentation.
const UDPSize = 1232

// RcodeSuccess is NOERROR; TypeA and TypeAAAA are the address types.
const (
	RcodeSuccess = 0

	TypeA    uint16 = 1
	TypeAAAA uint16 = 28
)

// Question is a name (fully qualified, trailing dot) and a record type.
type Question struct {
	Name string
	Type uint16
}

// Query is one question to ask.
type Query struct {
	ID uint16 // 0 for DNS over HTTPS (RFC 8484 §4.1: keeps answers cacheable)
	Question
	RecursionDesired bool
	EDNS             bool // add an OPT record advertising UDPSize
}

// NewQuery asks for name (made fully qualified) and type, recursion desired.
func NewQuery(id uint16, name string, qtype uint16) Query {
	return Query{ID: id, Question: Question{Name: fqdn(name), Type: qtype}, RecursionDesired: true}
}

// Pack returns the query in wire format.
func (q Query) Pack() ([]byte, error) {
	name, err := dnsmessage.NewName(q.Name)
	if err != nil {
		return nil, fmt.Errorf("query name %q: %w", q.Name, err)
	}
	b := dnsmessage.NewBuilder(make([]byte, 0, 64+len(q.Name)), dnsmessage.Header{ID: q.ID, RecursionDesired: q.RecursionDesired})
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(dnsmessage.Question{Name: name, Type: dnsmessage.Type(q.Type), Class: dnsmessage.ClassINET}); err != nil {
		return nil, err
	}
	if q.EDNS {
		if err := b.StartAdditionals(); err != nil {
			return nil, err
		}
		var h dnsmessage.ResourceHeader
		if err := h.SetEDNS0(UDPSize, dnsmessage.RCodeSuccess, false); err != nil {
			return nil, err
		}
		if err := b.OPTResource(h, dnsmessage.OPTResource{}); err != nil {
			return nil, err
		}
	}
	return b.Finish()
}

// Reply is what the probes read from an answer.
type Reply struct {
	ID        uint16
	Rcode     int // extended by the OPT record's upper bits when there is one
	Truncated bool
	Questions []Question
	Answers   int          // records in the answer section
	Addrs     []netip.Addr // its A and AAAA records, in order
}

// Parse reads a message in wire format.
func Parse(msg []byte) (*Reply, error) {
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil {
		return nil, err
	}
	if !h.Response {
		return nil, errors.New("not a response")
	}
	r := &Reply{ID: h.ID, Rcode: int(h.RCode), Truncated: h.Truncated}
	qs, err := p.AllQuestions()
	if err != nil {
		return nil, err
	}
	for _, q := range qs {
		r.Questions = append(r.Questions, Question{Name: q.Name.String(), Type: uint16(q.Type)})
	}
	if r.Truncated {
		return r, nil // the rest may be cut anywhere; only the retry over TCP counts
	}
	for {
		ah, err := p.AnswerHeader()
		if errors.Is(err, dnsmessage.ErrSectionDone) {
			break
		}
		if err != nil {
			return nil, err
		}
		r.Answers++
		switch {
		case ah.Type == dnsmessage.TypeA && ah.Class == dnsmessage.ClassINET:
			a, err := p.AResource()
			if err != nil {
				return nil, err
			}
			r.Addrs = append(r.Addrs, netip.AddrFrom4(a.A))
		case ah.Type == dnsmessage.TypeAAAA && ah.Class == dnsmessage.ClassINET:
			a, err := p.AAAAResource()
			if err != nil {
				return nil, err
			}
			r.Addrs = append(r.Addrs, netip.AddrFrom16(a.AAAA))
		default:
			if err := p.SkipAnswer(); err != nil {
				return nil, err
			}
		}
	}
	if err := p.SkipAllAuthorities(); err != nil {
		return nil, err
	}
	for {
		ah, err := p.AdditionalHeader()
		if errors.Is(err, dnsmessage.ErrSectionDone) {
			break
		}
		if err != nil {
			return nil, err
		}
		if ah.Type == dnsmessage.TypeOPT {
			r.Rcode = int(ah.ExtendedRCode(h.RCode))
		}
		if err := p.SkipAdditional(); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Matches reports whether r answers q: the same ID, and the same question
// (names compared without regard to case, as DNS does) or none, as some
// servers send with FORMERR or NOTIMP.
func (r *Reply) Matches(q Query) bool {
	if r.ID != q.ID || len(r.Questions) > 1 {
		return false
	}
	return len(r.Questions) == 0 || r.Questions[0].Type == q.Type && strings.EqualFold(r.Questions[0].Name, q.Name)
}

// Exchange sends q on conn and reads its answer; deadlines are the caller's,
// set on conn. stream means TCP: two-byte length prefixes (RFC 1035 §4.2.2).
// Over UDP a datagram that does not answer q (a late answer to an earlier
// query, or a forgery) is skipped and the wait goes on; one that carries q's
// ID but cannot be read is the answer, malformed.
func Exchange(conn net.Conn, stream bool, q Query) (*Reply, error) {
	wire, err := q.Pack()
	if err != nil {
		return nil, err
	}
	if stream {
		wire = append(binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(wire)), uint16(len(wire))), wire...)
	}
	if _, err := conn.Write(wire); err != nil {
		return nil, err
	}
	if stream {
		var l [2]byte
		if _, err := io.ReadFull(conn, l[:]); err != nil {
			return nil, err
		}
		msg := make([]byte, binary.BigEndian.Uint16(l[:]))
		if _, err := io.ReadFull(conn, msg); err != nil {
			return nil, err
		}
		r, err := Parse(msg)
		if err != nil {
			return nil, err
		}
		if !r.Matches(q) {
			return nil, fmt.Errorf("answer is for another query (id %d, question %v)", r.ID, r.Questions)
		}
		return r, nil
	}
	buf := make([]byte, 65535)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			return nil, err
		}
		r, err := Parse(buf[:n])
		switch {
		case err == nil && r.Matches(q):
			return r, nil
		case err != nil && n >= 2 && binary.BigEndian.Uint16(buf) == q.ID:
			return nil, fmt.Errorf("malformed answer: %w", err)
		}
	}
}

// fqdn adds the root's trailing dot when name lacks it.
func fqdn(name string) string {
	if strings.HasSuffix(name, ".") {
		return name
	}
	return name + "."
}

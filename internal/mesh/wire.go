// Package mesh is smokemon's node-to-node latency engine: a responder that
// answers only smokemon's probe format over UDP and TCP, and a prober that
// measures RTT, one-way delay, loss and reordering to many peers from one
// shared UDP socket and one scheduler.
package mesh

import (
	"encoding/binary"
	"errors"
)

// Wire format, version 1. All fields big-endian. A request and its reply
// have the same length: the responder rewrites the request in place, so a
// reply is never larger than what it answers.
//
//	off len field
//	0   4   magic "SMKM"
//	4   1   version (1)
//	5   1   type: 1 request, 2 reply
//	6   2   length of the whole message, HeaderLen..MaxLen; for UDP it must
//	        equal the datagram's size, for TCP it delimits the frame
//	8   4   session: the prober's random id for one peer (and one TCP connection)
//	12  4   seq: the probe's number in the session, from 1
//	16  8   t1: prober send time, Unix ns
//	24  8   t2: responder receive time, Unix ns (kernel timestamp where available)
//	32  8   t3: responder send time, Unix ns
//	40  4   rx: requests the responder has received in this session, this one included
//	44  4   hi: highest seq the responder has seen in the session
//	48  8   seen: bit i set = the responder received seq hi-1-i
//	56  1   flags: 1 = this request arrived after a higher seq (forward reordering)
//	57  7   reserved, zero
//	64  ... padding up to length (ignored)
//
// Fields 24..63 are zero in a request and ignored by the responder.
const (
	Magic     = "SMKM"
	Version   = 1
	HeaderLen = 64
	MaxLen    = 1472

	typeRequest = 1
	typeReply   = 2

	flagReordered = 1
)

// Header is a decoded message header.
type Header struct {
	Reply     bool
	Length    int
	Session   uint32
	Seq       uint32
	T1        int64
	T2, T3    int64
	Rx, Hi    uint32
	Seen      uint64
	Reordered bool
}

var (
	errShort   = errors.New("shorter than the header")
	errMagic   = errors.New("bad magic")
	errVersion = errors.New("unsupported version")
	errType    = errors.New("bad type")
	errLength  = errors.New("length field does not match")
)

// PutRequest writes a request of b's length (HeaderLen..MaxLen) into b.
func PutRequest(b []byte, session, seq uint32, t1 int64) {
	copy(b, Magic)
	b[4] = Version
	b[5] = typeRequest
	binary.BigEndian.PutUint16(b[6:], uint16(len(b)))
	binary.BigEndian.PutUint32(b[8:], session)
	binary.BigEndian.PutUint32(b[12:], seq)
	binary.BigEndian.PutUint64(b[16:], uint64(t1))
	clear(b[24:])
}

// checkPrefix validates the first 8 bytes and returns the message length.
func checkPrefix(b []byte, wantType byte) (int, error) {
	if len(b) < 8 {
		return 0, errShort
	}
	if string(b[:4]) != Magic {
		return 0, errMagic
	}
	if b[4] != Version {
		return 0, errVersion
	}
	if b[5] != wantType {
		return 0, errType
	}
	n := int(binary.BigEndian.Uint16(b[6:]))
	if n < HeaderLen || n > MaxLen {
		return 0, errLength
	}
	return n, nil
}

// ParseRequest validates a whole UDP datagram as a request.
func ParseRequest(b []byte) (Header, error) {
	n, err := checkPrefix(b, typeRequest)
	if err != nil {
		return Header{}, err
	}
	if n != len(b) {
		return Header{}, errLength
	}
	return Header{
		Length:  n,
		Session: binary.BigEndian.Uint32(b[8:]),
		Seq:     binary.BigEndian.Uint32(b[12:]),
		T1:      int64(binary.BigEndian.Uint64(b[16:])),
	}, nil
}

// ParseReply validates a whole message as a reply.
func ParseReply(b []byte) (Header, error) {
	n, err := checkPrefix(b, typeReply)
	if err != nil {
		return Header{}, err
	}
	if n != len(b) {
		return Header{}, errLength
	}
	return Header{
		Reply:     true,
		Length:    n,
		Session:   binary.BigEndian.Uint32(b[8:]),
		Seq:       binary.BigEndian.Uint32(b[12:]),
		T1:        int64(binary.BigEndian.Uint64(b[16:])),
		T2:        int64(binary.BigEndian.Uint64(b[24:])),
		T3:        int64(binary.BigEndian.Uint64(b[32:])),
		Rx:        binary.BigEndian.Uint32(b[40:]),
		Hi:        binary.BigEndian.Uint32(b[44:]),
		Seen:      binary.BigEndian.Uint64(b[48:]),
		Reordered: b[56]&flagReordered != 0,
	}, nil
}

// turnIntoReply rewrites a validated request in place; t3 is stamped last,
// by stampSend, as close to the send as possible.
func turnIntoReply(b []byte, t2 int64, st sessionState, reordered bool) {
	b[5] = typeReply
	binary.BigEndian.PutUint64(b[24:], uint64(t2))
	binary.BigEndian.PutUint32(b[40:], st.rx)
	binary.BigEndian.PutUint32(b[44:], st.hi)
	binary.BigEndian.PutUint64(b[48:], st.seen)
	b[56] = 0
	if reordered {
		b[56] = flagReordered
	}
	clear(b[57:64])
}

func stampSend(b []byte, t3 int64) { binary.BigEndian.PutUint64(b[32:], uint64(t3)) }

// sessionState is what the responder remembers of one prober session: enough
// for the prober to tell a request lost on the way there from a reply lost on
// the way back.
type sessionState struct {
	rx   uint32
	hi   uint32
	seen uint64
	last int64 // Unix ns of the latest request, for eviction
}

// record notes seq and reports whether it arrived after a higher one.
// Duplicates are counted in rx like any request.
func (s *sessionState) record(seq uint32) (reordered bool) {
	s.rx++
	switch {
	case s.rx == 1:
		s.hi, s.seen = seq, 0
	case seq > s.hi:
		shift := seq - s.hi
		if shift > 64 {
			s.seen = 0
		} else {
			// Go defines a shift by 64 as 0, so shift == 64 needs no case.
			s.seen = s.seen<<shift | 1<<(shift-1)
		}
		s.hi = seq
	case seq < s.hi:
		reordered = true
		if d := s.hi - seq; d <= 64 {
			s.seen |= 1 << (d - 1)
		}
	}
	return reordered
}

// Verdict is what a reply says about an earlier probe of its session.
type Verdict uint8

const (
	Pending Verdict = iota // the reply predates the probe: wait for a later one
	Seen                   // the responder received the probe: its reply was lost
	Missed                 // the responder never received it: lost on the way there
	Unknown                // too far back for the reply's bitmap
)

// About reports what the reply h says about seq.
func (h *Header) About(seq uint32) Verdict {
	switch {
	case seq == h.Hi:
		return Seen
	case seq > h.Hi:
		return Pending
	case h.Hi-seq > 64:
		return Unknown
	case h.Seen&(1<<(h.Hi-seq-1)) != 0:
		return Seen
	}
	return Missed
}

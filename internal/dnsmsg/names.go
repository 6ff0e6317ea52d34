package dnsmsg

import (
	"strconv"
	"strings"
)

// types are the record types a probe may ask for by name (IANA DNS
// parameters); any other is written TYPEn (RFC 3597).
var types = map[string]uint16{
	"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "HINFO": 13, "MX": 15, "TXT": 16,
	"RP": 17, "AFSDB": 18, "SIG": 24, "KEY": 25, "AAAA": 28, "LOC": 29, "SRV": 33,
	"NAPTR": 35, "KX": 36, "CERT": 37, "DNAME": 39, "APL": 42, "DS": 43, "SSHFP": 44,
	"IPSECKEY": 45, "RRSIG": 46, "NSEC": 47, "DNSKEY": 48, "DHCID": 49, "NSEC3": 50,
	"NSEC3PARAM": 51, "TLSA": 52, "SMIMEA": 53, "HIP": 55, "CDS": 59, "CDNSKEY": 60,
	"OPENPGPKEY": 61, "CSYNC": 62, "ZONEMD": 63, "SVCB": 64, "HTTPS": 65, "SPF": 99,
	"EUI48": 108, "EUI64": 109, "TKEY": 249, "TSIG": 250, "IXFR": 251, "AXFR": 252,
	"ANY": 255, "URI": 256, "CAA": 257, "AVC": 258, "TA": 32768, "DLV": 32769,
}

// ParseType returns the number of a record type written as a name (any
// case) or as TYPEn. OPT (41) and 0 are not types one can ask for.
func ParseType(s string) (uint16, bool) {
	s = strings.ToUpper(s)
	if t, ok := types[s]; ok {
		return t, true
	}
	if n, ok := strings.CutPrefix(s, "TYPE"); ok {
		if t, err := strconv.ParseUint(n, 10, 16); err == nil && t != 0 && t != 41 {
			return uint16(t), true
		}
	}
	return 0, false
}

// TypeString is the name of a record type, TYPEn when it has none here.
func TypeString(t uint16) string {
	for name, v := range types {
		if v == t {
			return name
		}
	}
	return "TYPE" + strconv.Itoa(int(t))
}

// rcodes are the response codes by number (RFC 6895 §2.3), extended ones
// (from the OPT record) included.
var rcodes = map[int]string{
	0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED",
	6: "YXDOMAIN", 7: "YXRRSET", 8: "NXRRSET", 9: "NOTAUTH", 10: "NOTZONE", 11: "DSOTYPENI",
	16: "BADVERS", 17: "BADKEY", 18: "BADTIME", 19: "BADMODE", 20: "BADNAME", 21: "BADALG",
	22: "BADTRUNC", 23: "BADCOOKIE",
}

// RcodeString is the name of a response code, its number when it has none.
func RcodeString(rc int) string {
	if s, ok := rcodes[rc]; ok {
		return s
	}
	return strconv.Itoa(rc)
}

// ParseRcode returns the number of a response code written as a name (any
// case) or a number.
func ParseRcode(s string) (int, bool) {
	s = strings.ToUpper(s)
	for rc, name := range rcodes {
		if name == s {
			return rc, true
		}
	}
	if rc, err := strconv.Atoi(s); err == nil && rc >= 0 && rc < 4096 {
		return rc, true
	}
	return 0, false
}

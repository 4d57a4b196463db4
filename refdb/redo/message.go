package redo

import (
	"encoding/binary"
	"fmt"
)

// MsgType names a protocol message between the volume client (writer) and storage segments, or
// between peer segments.
type MsgType uint8

const (
	MsgAppend     MsgType = iota + 1 // writer -> segment: records of one PG, with the writer's VDL as Hint
	MsgAppendAck                     // segment -> writer: SCL after persisting
	MsgReject                        // segment -> sender: Code says why
	MsgSeal                          // recovery -> segment: fence older epochs, report state
	MsgSealResp                      // segment -> recovery: History, Hint, Floor, Tail, SCL, Records above Floor
	MsgInstall                       // writer -> segment: install History (truncate), store Records, learn Peers
	MsgInstallAck                    // segment -> writer: SCL after install
	MsgGossipReq                     // segment -> peer: my History and SCL
	MsgGossipResp                    // peer -> segment: its History, records above the SCL asked for (or a snapshot)
	MsgRead                          // client -> segment: Get Key (or Scan [Key, EndKey)) at ReadLSN
	MsgReadResp                      // segment -> client
	MsgStatus                        // anyone -> node: report every hosted segment
	MsgStatusResp                    // node -> anyone: Status
	MsgFault                         // writer -> node: fault injection (FaultSpec in Value; see fault.go)
	MsgFaultResp                     // node -> writer: FaultState in Value
	msgTypeEnd
)

var msgNames = [...]string{"?", "Append", "AppendAck", "Reject", "Seal", "SealResp", "Install", "InstallAck", "GossipReq", "GossipResp", "Read", "ReadResp", "Status", "StatusResp", "Fault", "FaultResp"}

func (t MsgType) String() string {
	if int(t) < len(msgNames) {
		return msgNames[t]
	}
	return fmt.Sprintf("MsgType(%d)", uint8(t))
}

// RejectCode says why a segment refused a request.
type RejectCode uint8

const (
	RejectNone         RejectCode = iota
	RejectStaleEpoch              // the sender's epoch is older than the segment's: the sender is fenced
	RejectNeedInstall             // the segment does not know the sender's epoch, or does not host the PG yet
	RejectRebuilding              // the segment is rebuilding from peers and cannot serve or ack yet
	RejectNotHosted               // the node hosts no segment of that PG (seal of a wiped or foreign node)
	RejectIncomplete              // a read asked for more than the segment has completely
	RejectBelowHorizon            // a read point older than the retained history window
	RejectBadRequest              // malformed request
	RejectDiskError               // an injected disk failure (ALTER SYSTEM SIMULATE … DISK FAILURE) failed the request
)

var rejectNames = [...]string{"none", "stale epoch", "need install", "rebuilding", "PG not hosted", "segment incomplete at read point", "read point below GC horizon", "bad request", "disk error (injected fault)"}

func (c RejectCode) String() string {
	if int(c) < len(rejectNames) {
		return rejectNames[c]
	}
	return fmt.Sprintf("reject(%d)", uint8(c))
}

// Message flags.
const (
	MFlagCreate   = 1 << 0 // Install: create the segment as the volume's first, complete, copy
	MFlagSnapshot = 1 << 1 // GossipResp: Records are a full snapshot at Base (BaseTail)
	MFlagFound    = 1 << 2 // ReadResp: Get found a live value
	MFlagScan     = 1 << 3 // Read: scan [Key, EndKey) instead of Get
)

// Peer identifies a storage node.
type Peer struct {
	ID   string
	AZ   string
	Addr string
}

// SegStatus is one hosted segment as a node reports it.
type SegStatus struct {
	PG      uint32
	Epoch   uint64
	SCL     LSN
	Active  bool
	Records uint64
}

// Message is the single message shape of the protocol; each type uses a subset of the fields.
type Message struct {
	Type     MsgType
	From, To string
	ReqID    uint64
	PG       uint32
	Epoch    uint64
	Code     RejectCode
	Flags    uint8
	SCL      LSN
	Hint     LSN
	Floor    LSN
	Tail     LSN
	Base     LSN
	BaseTail LSN
	ReadLSN  LSN
	Need     LSN
	Limit    uint32
	Key      []byte
	EndKey   []byte
	Value    []byte
	Err      string
	Records  []Record
	History  History
	Peers    []Peer
	Status   []SegStatus
}

func (m *Message) String() string {
	return fmt.Sprintf("%s{%s->%s pg=%d e=%d code=%s scl=%d recs=%d}", m.Type, m.From, m.To, m.PG, m.Epoch, m.Code, m.SCL, len(m.Records))
}

// MessageVersion is the wire version of AppendMessage.
const MessageVersion = 2

const (
	maxIDLen    = 256
	maxErrLen   = 4096
	maxListLen  = 1 << 20
	maxStrField = 1 << 10
)

// AppendMessage appends the checksummed encoding of m to dst.
func AppendMessage(dst []byte, m *Message) []byte {
	start := len(dst)
	dst = append(dst, MessageVersion, byte(m.Type), byte(m.Code), m.Flags)
	dst = appendString(dst, m.From)
	dst = appendString(dst, m.To)
	for _, v := range []uint64{m.ReqID, uint64(m.PG), m.Epoch, uint64(m.SCL), uint64(m.Hint), uint64(m.Floor), uint64(m.Tail),
		uint64(m.Base), uint64(m.BaseTail), uint64(m.ReadLSN), uint64(m.Need), uint64(m.Limit)} {
		dst = binary.AppendUvarint(dst, v)
	}
	dst = appendBytes(dst, m.Key)
	dst = appendBytes(dst, m.EndKey)
	dst = appendBytes(dst, m.Value)
	dst = appendString(dst, m.Err)
	dst = binary.AppendUvarint(dst, uint64(len(m.Records)))
	for i := range m.Records {
		dst = AppendRecord(dst, &m.Records[i])
	}
	dst = binary.AppendUvarint(dst, uint64(len(m.History)))
	for _, h := range m.History {
		dst = binary.AppendUvarint(dst, h.Epoch)
		dst = binary.AppendUvarint(dst, uint64(h.Trunc))
		dst = binary.AppendUvarint(dst, uint64(h.Start))
		dst = appendString(dst, h.Owner)
	}
	dst = binary.AppendUvarint(dst, uint64(len(m.Peers)))
	for _, p := range m.Peers {
		dst = appendString(dst, p.ID)
		dst = appendString(dst, p.AZ)
		dst = appendString(dst, p.Addr)
	}
	dst = binary.AppendUvarint(dst, uint64(len(m.Status)))
	for _, s := range m.Status {
		dst = binary.AppendUvarint(dst, uint64(s.PG))
		dst = binary.AppendUvarint(dst, s.Epoch)
		dst = binary.AppendUvarint(dst, uint64(s.SCL))
		act := uint64(0)
		if s.Active {
			act = 1
		}
		dst = binary.AppendUvarint(dst, act)
		dst = binary.AppendUvarint(dst, s.Records)
	}
	return binary.LittleEndian.AppendUint32(dst, Checksum(dst[start:]))
}

// DecodeMessage decodes a whole buffer produced by AppendMessage. Byte slices of the result
// alias b.
func DecodeMessage(b []byte) (*Message, error) {
	if len(b) < 4 {
		return nil, fmt.Errorf("%w: message of %d bytes", ErrCorrupt, len(b))
	}
	body := b[:len(b)-4]
	if got, want := binary.LittleEndian.Uint32(b[len(b)-4:]), Checksum(body); got != want {
		return nil, fmt.Errorf("%w: message checksum %08x, want %08x", ErrCorrupt, got, want)
	}
	d := decoder{b: body}
	if v := d.byte(); d.err == nil && v != MessageVersion {
		return nil, fmt.Errorf("%w: message version %d, want %d", ErrCorrupt, v, MessageVersion)
	}
	m := &Message{}
	m.Type = MsgType(d.byte())
	m.Code = RejectCode(d.byte())
	m.Flags = d.byte()
	m.From = d.string(maxIDLen)
	m.To = d.string(maxIDLen)
	m.ReqID = d.uvarint()
	pg := d.uvarint()
	m.Epoch = d.uvarint()
	m.SCL = LSN(d.uvarint())
	m.Hint = LSN(d.uvarint())
	m.Floor = LSN(d.uvarint())
	m.Tail = LSN(d.uvarint())
	m.Base = LSN(d.uvarint())
	m.BaseTail = LSN(d.uvarint())
	m.ReadLSN = LSN(d.uvarint())
	m.Need = LSN(d.uvarint())
	limit := d.uvarint()
	m.Key = d.bytes(MaxKeyLen)
	m.EndKey = d.bytes(MaxKeyLen)
	m.Value = d.bytes(MaxValueLen)
	m.Err = d.string(maxErrLen)
	if d.err != nil {
		return nil, fmt.Errorf("decode %s message: %w", m.Type, d.err)
	}
	if pg > 1<<32-1 || limit > 1<<32-1 {
		return nil, fmt.Errorf("%w: PG or limit out of range", ErrCorrupt)
	}
	m.PG, m.Limit = uint32(pg), uint32(limit)
	if m.Type == 0 || m.Type >= msgTypeEnd {
		return nil, fmt.Errorf("%w: unknown message type %d", ErrCorrupt, m.Type)
	}
	n := d.count(maxListLen, 7)
	for i := 0; i < n && d.err == nil; i++ {
		r, used, err := DecodeRecord(d.b[d.off:])
		if err != nil {
			return nil, fmt.Errorf("decode %s message record %d: %w", m.Type, i, err)
		}
		d.off += used
		m.Records = append(m.Records, r)
	}
	n = d.count(maxListLen, 4)
	for i := 0; i < n && d.err == nil; i++ {
		m.History = append(m.History, EpochEntry{Epoch: d.uvarint(), Trunc: LSN(d.uvarint()), Start: LSN(d.uvarint()), Owner: d.string(maxIDLen)})
	}
	n = d.count(maxListLen, 3)
	for i := 0; i < n && d.err == nil; i++ {
		m.Peers = append(m.Peers, Peer{ID: d.string(maxIDLen), AZ: d.string(maxStrField), Addr: d.string(maxStrField)})
	}
	n = d.count(maxListLen, 5)
	for i := 0; i < n && d.err == nil; i++ {
		pg, e, scl, act, recs := d.uvarint(), d.uvarint(), d.uvarint(), d.uvarint(), d.uvarint()
		if pg > 1<<32-1 || act > 1 {
			d.fail("bad segment status")
		}
		m.Status = append(m.Status, SegStatus{PG: uint32(pg), Epoch: e, SCL: LSN(scl), Active: act == 1, Records: recs})
	}
	if d.err != nil {
		return nil, fmt.Errorf("decode %s message: %w", m.Type, d.err)
	}
	if d.off != len(body) {
		return nil, fmt.Errorf("%w: %d trailing bytes in %s message", ErrCorrupt, len(body)-d.off, m.Type)
	}
	if err := m.History.Validate(); err != nil {
		return nil, fmt.Errorf("decode %s message: %w", m.Type, err)
	}
	return m, nil
}

// count reads a list length and checks it against the bytes left (each element takes at least
// minSize bytes), so a corrupt count cannot cause a huge allocation.
func (d *decoder) count(max int, minSize int) int {
	n := d.uvarint()
	if d.err != nil {
		return 0
	}
	if n > uint64(max) || n*uint64(minSize) > uint64(len(d.b)-d.off) {
		d.fail("list length %d exceeds limit or input", n)
		return 0
	}
	return int(n)
}

func appendBytes(dst, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// Clone deep-copies a message so that the simulator can deliver duplicates that share nothing.
func (m *Message) Clone() *Message {
	c := *m
	c.Key = cloneBytes(m.Key)
	c.EndKey = cloneBytes(m.EndKey)
	c.Value = cloneBytes(m.Value)
	if m.Records != nil {
		c.Records = make([]Record, len(m.Records))
		for i := range m.Records {
			c.Records[i] = m.Records[i].Clone()
		}
	}
	c.History = m.History.Clone()
	c.Peers = append([]Peer(nil), m.Peers...)
	c.Status = append([]SegStatus(nil), m.Status...)
	return &c
}

func cloneBytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}

package netdelay

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/mdlayher/netlink"
	"github.com/ti-mo/netfilter"
	"golang.org/x/sys/unix"
)

// nfnetlink_queue protocol, from include/uapi/linux/netfilter/nfnetlink_queue.h.
// Only what a delayer needs: bind a queue, receive packet ids, send verdicts.
const (
	msgPacket  netfilter.MessageType = 0 // NFQNL_MSG_PACKET
	msgVerdict netfilter.MessageType = 1 // NFQNL_MSG_VERDICT
	msgConfig  netfilter.MessageType = 2 // NFQNL_MSG_CONFIG

	attrPacketHdr  = 1 // NFQA_PACKET_HDR: be32 packet_id, be16 hw_protocol, u8 hook
	attrVerdictHdr = 2 // NFQA_VERDICT_HDR: be32 verdict, be32 id

	cfgCmd      = 1 // NFQA_CFG_CMD: u8 command, u8 pad, be16 pf
	cfgParams   = 2 // NFQA_CFG_PARAMS: be32 copy_range, u8 copy_mode (packed)
	cfgQueueMax = 3 // NFQA_CFG_QUEUE_MAXLEN: be32
	cfgMask     = 4 // NFQA_CFG_MASK: be32
	cfgFlags    = 5 // NFQA_CFG_FLAGS: be32

	cmdBind   = 1 // NFQNL_CFG_CMD_BIND
	cmdUnbind = 2 // NFQNL_CFG_CMD_UNBIND

	copyMeta = 1 // NFQNL_COPY_META: metadata only, no payload copied to us

	// NFQA_CFG_F_FAIL_OPEN: when the queue is full (or our socket buffer
	// overflows) the kernel accepts packets instead of dropping them, so an
	// overloaded delayer degrades to "less delay", never to an outage.
	flagFailOpen = 1
	// NFQA_CFG_F_GSO: hand us GSO super-packets whole instead of segmenting
	// them first; we never look at payloads, so this only saves work.
	flagGSO = 4
)

// verdictLen is the size of one encoded verdict message:
// nlmsghdr (16) + nfgenmsg (4) + nlattr (4) + nfqnl_msg_verdict_hdr (8).
const verdictLen = 32

// configMessage builds an NFQNL_MSG_CONFIG request for the queue.
func configMessage(queue uint16, attrs ...netfilter.Attribute) (netlink.Message, error) {
	return netfilter.MarshalNetlink(netfilter.Header{
		SubsystemID: netfilter.NFSubsysQueue,
		MessageType: msgConfig,
		Family:      netfilter.ProtoUnspec,
		ResourceID:  queue,
		Flags:       netlink.Request | netlink.Acknowledge,
	}, attrs)
}

func cmdAttr(cmd uint8) netfilter.Attribute {
	return netfilter.Attribute{Type: cfgCmd, Data: []byte{cmd, 0, 0, 0}}
}

func paramsAttr(copyRange uint32, mode uint8) netfilter.Attribute {
	b := make([]byte, 5)
	binary.BigEndian.PutUint32(b, copyRange)
	b[4] = mode
	return netfilter.Attribute{Type: cfgParams, Data: b}
}

func u32Attr(typ uint16, v uint32) netfilter.Attribute {
	return netfilter.Attribute{Type: typ, Data: netfilter.Uint32Bytes(v)}
}

// appendVerdict encodes the verdict message for one packet by hand: it is
// sent for every packet, so it must not allocate.
func appendVerdict(b []byte, queue uint16, id, verdict uint32) []byte {
	const typ = uint16(netfilter.NFSubsysQueue)<<8 | uint16(msgVerdict)
	var m [verdictLen]byte
	ne := binary.NativeEndian
	ne.PutUint32(m[0:], verdictLen)             // nlmsg_len
	ne.PutUint16(m[4:], typ)                    // nlmsg_type
	ne.PutUint16(m[6:], unix.NLM_F_REQUEST)     // nlmsg_flags: no ACK, errors still come back
	m[16] = unix.AF_UNSPEC                      // nfgen_family
	binary.BigEndian.PutUint16(m[18:], queue)   // res_id
	ne.PutUint16(m[20:], 12)                    // nla_len
	ne.PutUint16(m[22:], attrVerdictHdr)        // nla_type
	binary.BigEndian.PutUint32(m[24:], verdict) // verdict
	binary.BigEndian.PutUint32(m[28:], id)      // packet id
	return append(b, m[:]...)
}

// errNotPacket marks netlink messages that are not queued packets.
var errNotPacket = errors.New("not an nfqueue packet")

// packetID extracts the packet id of an NFQNL_MSG_PACKET message body
// (everything after the nlmsghdr).
func packetID(typ uint16, data []byte) (uint32, error) {
	if typ != uint16(netfilter.NFSubsysQueue)<<8|uint16(msgPacket) {
		return 0, errNotPacket
	}
	if len(data) < 4 {
		return 0, fmt.Errorf("nfqueue packet: short message (%d bytes)", len(data))
	}
	b := data[4:] // skip nfgenmsg
	for len(b) >= 4 {
		l := int(binary.NativeEndian.Uint16(b[0:]))
		t := binary.NativeEndian.Uint16(b[2:]) & nlaTypeMask
		if l < 4 || l > len(b) {
			return 0, fmt.Errorf("nfqueue packet: bad attribute length %d", l)
		}
		if t == attrPacketHdr {
			if l < 4+4 {
				return 0, fmt.Errorf("nfqueue packet: short packet header")
			}
			return binary.BigEndian.Uint32(b[4:]), nil
		}
		al := (l + unix.NLA_ALIGNTO - 1) &^ (unix.NLA_ALIGNTO - 1)
		if al > len(b) {
			break
		}
		b = b[al:]
	}
	return 0, fmt.Errorf("nfqueue packet: no packet header attribute")
}

func nativeUint32(b []byte) uint32 { return binary.NativeEndian.Uint32(b) }

// nlaTypeMask strips NLA_F_NESTED and NLA_F_NET_BYTEORDER from nla_type.
const nlaTypeMask = 0x3fff

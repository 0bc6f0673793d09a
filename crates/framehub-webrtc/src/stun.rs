//! Just enough STUN (RFC 8489) to route a datagram: whether it is a STUN
//! message, and the local ICE username fragment its `USERNAME` names.
//!
//! A peer's first datagram comes from an address the endpoint has not seen;
//! its STUN binding request carries `USERNAME` = `<receiver ufrag>:<sender
//! ufrag>` (RFC 8445 §7.2.2), and the receiver's ufrag is the one the hub
//! put in that peer's answer. Everything else is routed by source address.

/// STUN's magic cookie (RFC 8489 §5).
const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
/// The `USERNAME` attribute (RFC 8489 §14.3).
const ATTR_USERNAME: u16 = 0x0006;
/// STUN header length in bytes (RFC 8489 §5).
const HEADER: usize = 20;
/// Longest `USERNAME` value accepted (RFC 8489 §14.3: < 509 bytes).
const MAX_USERNAME: usize = 513;

/// Whether `datagram` looks like a STUN message: the first two bits are 0,
/// the length is a multiple of 4 that fits, and the magic cookie is there
/// (RFC 8489 §5; RFC 7983 §7 for the demultiplexing by first byte).
pub fn is_stun(datagram: &[u8]) -> bool {
    datagram.len() >= HEADER && datagram[0] < 2 && datagram[4..8] == MAGIC_COOKIE && {
        let len = u16::from_be_bytes([datagram[2], datagram[3]]) as usize;
        len.is_multiple_of(4) && HEADER + len <= datagram.len()
    }
}

/// The receiver's ICE ufrag from a STUN message's `USERNAME` (the part
/// before `:`), or None when `datagram` is not STUN or has no username.
/// Never panics, whatever the bytes.
pub fn local_ufrag(datagram: &[u8]) -> Option<&str> {
    if !is_stun(datagram) {
        return None;
    }
    let len = u16::from_be_bytes([datagram[2], datagram[3]]) as usize;
    let mut attrs = &datagram[HEADER..HEADER + len];
    while attrs.len() >= 4 {
        let kind = u16::from_be_bytes([attrs[0], attrs[1]]);
        let n = u16::from_be_bytes([attrs[2], attrs[3]]) as usize;
        let value = attrs.get(4..4 + n)?;
        if kind == ATTR_USERNAME {
            if n > MAX_USERNAME {
                return None;
            }
            let name = std::str::from_utf8(value).ok()?;
            return name.split(':').next().filter(|u| !u.is_empty());
        }
        // Values are padded to a multiple of 4 bytes.
        let step = 4 + n.div_ceil(4) * 4;
        attrs = attrs.get(step..)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(username: &[u8]) -> Vec<u8> {
        let mut attr = Vec::new();
        attr.extend_from_slice(&ATTR_USERNAME.to_be_bytes());
        attr.extend_from_slice(&(username.len() as u16).to_be_bytes());
        attr.extend_from_slice(username);
        while !attr.len().is_multiple_of(4) {
            attr.push(0);
        }
        // PRIORITY before it, to walk past an attribute.
        let mut attrs = vec![0x00, 0x24, 0x00, 0x04, 1, 2, 3, 4];
        attrs.extend_from_slice(&attr);
        let mut m = vec![0x00, 0x01];
        m.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        m.extend_from_slice(&MAGIC_COOKIE);
        m.extend_from_slice(&[7; 12]);
        m.extend_from_slice(&attrs);
        m
    }

    #[test]
    fn finds_the_receivers_ufrag() {
        assert_eq!(local_ufrag(&binding(b"hubfrag:peer")), Some("hubfrag"));
        assert_eq!(local_ufrag(&binding(b"abc:d")), Some("abc"));
    }

    #[test]
    fn other_datagrams_have_none() {
        assert_eq!(local_ufrag(&binding(b":peer")), None);
        // RTP (first byte 0x80), DTLS (20..63), garbage, short.
        assert_eq!(local_ufrag(&[0x80; 40]), None);
        assert_eq!(local_ufrag(&[22; 40]), None);
        assert_eq!(local_ufrag(&[]), None);
        let mut m = binding(b"hubfrag:peer");
        m[4] = 0; // no cookie
        assert_eq!(local_ufrag(&m), None);
    }

    #[test]
    fn truncated_and_lying_lengths_do_not_panic() {
        let m = binding(b"hubfrag:peer");
        for cut in 0..m.len() {
            let _ = local_ufrag(&m[..cut]);
        }
        let mut lying = m.clone();
        lying[HEADER + 10] = 0xff; // USERNAME length far past the end
        assert_eq!(local_ufrag(&lying), None);
        for i in 0..m.len() {
            let mut x = m.clone();
            x[i] ^= 0xff;
            let _ = local_ufrag(&x);
        }
    }
}

// Test-only stand-in for the `@koush/wrtc` package that PeerPigeon (through pigeonrtc) imports.
//
// It re-exports the working `@roamhq/wrtc` binding, with one change: an RTCPeerConnection
// subclass that keeps every ICE candidate on the loopback interface. Non-loopback candidates are
// dropped in all three places they can travel:
//   * outgoing: `icecandidate` events (both `onicecandidate` and addEventListener listeners)
//     never see them, and the SDP from createOffer/createAnswer has their lines removed;
//   * incoming: `addIceCandidate` resolves without adding them, and `setRemoteDescription`
//     removes their `a=candidate` lines from the remote SDP.
// So every WebRTC link made in the interop tests runs over 127.0.0.1.

import wrtc from '@roamhq/wrtc';

const Base = wrtc.RTCPeerConnection;

/**
 * True when an ICE candidate string (with or without the `a=` prefix) is on IPv4 loopback
 * (127.0.0.0/8). IPv6 ::1 is left out on purpose: the Python side (aioice) only offers
 * 127.0.0.1, and JS-to-JS links should use the same path.
 */
export function isLoopbackCandidate(candidate) {
  if (typeof candidate !== 'string') return false;
  const text = candidate.trim().replace(/^a=/, '').replace(/^candidate:/, '');
  const fields = text.split(/\s+/);
  if (fields.length < 5) return false;
  const address = fields[4].toLowerCase();
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(address);
}

/** Remove non-loopback `a=candidate:` lines from an SDP text. */
export function stripNonLoopbackCandidates(sdp) {
  if (typeof sdp !== 'string') return sdp;
  const eol = sdp.includes('\r\n') ? '\r\n' : '\n';
  return sdp
    .split(eol)
    .filter((line) => !line.startsWith('a=candidate:') || isLoopbackCandidate(line))
    .join(eol);
}

function candidateText(candidate) {
  if (candidate == null) return null;
  if (typeof candidate === 'string') return candidate;
  if (typeof candidate.candidate === 'string') return candidate.candidate;
  return null;
}

/** An end-of-candidates marker (null or empty candidate) is always let through. */
function keepCandidate(candidate) {
  const text = candidateText(candidate);
  if (text === null || text === '') return true;
  return isLoopbackCandidate(text);
}

function filteredDescription(description) {
  if (description == null || typeof description.sdp !== 'string') return description;
  return { type: description.type, sdp: stripNonLoopbackCandidates(description.sdp) };
}

/**
 * RTCPeerConnection restricted to loopback ICE candidates.
 *
 * The binding dispatches every event through `this.dispatchEvent`, which also calls the
 * `on<type>` handler, so filtering there covers `onicecandidate` and `addEventListener` alike.
 * (The binding defines `localDescription` & co. as non-configurable own properties, so those
 * cannot be wrapped; PeerPigeon sends the objects returned by createOffer/createAnswer, which
 * are filtered below, and trickles the rest as `icecandidate` events.)
 */
export class RTCPeerConnection extends Base {
  dispatchEvent(event) {
    if (event && event.type === 'icecandidate' && !keepCandidate(event.candidate)) {
      return true;
    }
    return super.dispatchEvent(event);
  }

  addIceCandidate(candidate, ...rest) {
    if (!keepCandidate(candidate)) {
      const callback = rest.find((arg) => typeof arg === 'function');
      if (callback) callback();
      return Promise.resolve();
    }
    return super.addIceCandidate(candidate, ...rest);
  }

  setRemoteDescription(description, ...rest) {
    return super.setRemoteDescription(filteredDescription(description), ...rest);
  }

  async createOffer(...args) {
    return filteredDescription(await super.createOffer(...args));
  }

  async createAnswer(...args) {
    return filteredDescription(await super.createAnswer(...args));
  }
}

export const {
  MediaStream,
  MediaStreamTrack,
  RTCDataChannel,
  RTCDataChannelEvent,
  RTCDtlsTransport,
  RTCIceCandidate,
  RTCIceTransport,
  RTCPeerConnectionIceEvent,
  RTCPeerConnectionIceErrorEvent,
  RTCRtpReceiver,
  RTCRtpSender,
  RTCRtpTransceiver,
  RTCSctpTransport,
  RTCSessionDescription,
  getUserMedia,
  mediaDevices,
  nonstandard,
} = wrtc;

const loopbackWrtc = { ...wrtc, RTCPeerConnection };
export default loopbackWrtc;

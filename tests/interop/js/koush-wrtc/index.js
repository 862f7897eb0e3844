// Test-only stand-in for the `@koush/wrtc` package that PeerPigeon (through pigeonrtc) imports.
//
// It re-exports the working `@roamhq/wrtc` binding, with one change: an RTCPeerConnection
// subclass that keeps every ICE candidate on the loopback interface. Non-loopback candidates are
// dropped in all three places they can travel:
//   * outgoing: `icecandidate` events (both `onicecandidate` and addEventListener listeners)
//     never see them, and `localDescription` has their `a=candidate` lines removed;
//   * incoming: `addIceCandidate` resolves without adding them, and `setRemoteDescription`
//     removes their `a=candidate` lines from the remote SDP.
// So every WebRTC link made in the interop tests runs over 127.0.0.1 (or ::1).

import wrtc from '@roamhq/wrtc';

const Base = wrtc.RTCPeerConnection;

/** True when an ICE candidate string (with or without the `a=` prefix) is on loopback. */
export function isLoopbackCandidate(candidate) {
  if (typeof candidate !== 'string') return false;
  const text = candidate.trim().replace(/^a=/, '').replace(/^candidate:/, '');
  const fields = text.split(/\s+/);
  if (fields.length < 5) return false;
  const address = fields[4].toLowerCase();
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(address) || address === '::1' ||
    address === '0:0:0:0:0:0:0:1' || address === 'localhost';
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

const wrappedListeners = new WeakMap();

function wrapIceListener(listener) {
  if (listener == null) return listener;
  let wrapped = wrappedListeners.get(listener);
  if (wrapped === undefined) {
    wrapped = function loopbackIceListener(event) {
      if (event && !keepCandidate(event.candidate)) return undefined;
      if (typeof listener === 'function') return listener.call(this, event);
      return listener.handleEvent(event);
    };
    wrappedListeners.set(listener, wrapped);
  }
  return wrapped;
}

export class RTCPeerConnection extends Base {
  constructor(...args) {
    super(...args);
    this._loopbackOnIceCandidate = null;
  }

  get onicecandidate() {
    return this._loopbackOnIceCandidate;
  }

  set onicecandidate(handler) {
    if (this._loopbackOnIceCandidate !== null) {
      super.removeEventListener('icecandidate', wrapIceListener(this._loopbackOnIceCandidate));
    }
    this._loopbackOnIceCandidate = typeof handler === 'function' ? handler : null;
    if (this._loopbackOnIceCandidate !== null) {
      super.addEventListener('icecandidate', wrapIceListener(this._loopbackOnIceCandidate));
    }
  }

  addEventListener(type, listener, options) {
    if (type === 'icecandidate') listener = wrapIceListener(listener);
    return super.addEventListener(type, listener, options);
  }

  removeEventListener(type, listener, options) {
    if (type === 'icecandidate' && listener != null) listener = wrapIceListener(listener);
    return super.removeEventListener(type, listener, options);
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

  get localDescription() {
    return filteredDescription(super.localDescription);
  }

  get pendingLocalDescription() {
    return filteredDescription(super.pendingLocalDescription);
  }

  get currentLocalDescription() {
    return filteredDescription(super.currentLocalDescription);
  }
}

export const {
  MediaStream,
  MediaStreamTrack,
  RTCDataChannel,
  RTCDataChannelEvent,
  RTCIceCandidate,
  RTCPeerConnectionIceEvent,
  RTCRtpReceiver,
  RTCRtpSender,
  RTCRtpTransceiver,
  RTCSctpTransport,
  RTCSessionDescription,
  nonstandard,
} = wrtc;

const loopbackWrtc = { ...wrtc, RTCPeerConnection };
export default loopbackWrtc;

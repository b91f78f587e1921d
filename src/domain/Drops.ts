/**
 * Named drop reasons. Packet code counts drops into a `Uint32Array` indexed by these numbers
 * (one array per chunk); the tunnel turns the non-zero entries into Effect metrics once per chunk.
 */
export const Drop = {
  // Encapsulation (TUN -> network)
  EncapBadVersion: 0,
  EncapModeDisabled: 1,
  EncapTruncated: 2,
  EncapBadHeader: 3,
  EncapBadChecksum: 4,
  EncapTtlZero: 5,
  EncapNoRoute: 6,
  EncapLoop: 7,
  EncapTooBig: 8,
  EncapSendError: 9,
  // Decapsulation (network -> TUN)
  DecapRemoteMismatch: 10,
  DecapLocalMismatch: 11,
  DecapOuterBadHeader: 12,
  DecapOuterBadChecksum: 13,
  DecapOuterTruncated: 14,
  DecapFragment: 15,
  DecapInnerBadVersion: 16,
  DecapInnerTruncated: 17,
  DecapInnerBadHeader: 18,
  DecapInnerBadChecksum: 19,
  DecapTtlZero: 20,
  DecapEcnCe: 21,
  DecapBadSource: 22,
  DecapModeDisabled: 23,
  DecapOversize: 24,
  DecapWriteError: 25,
  // ICMP errors the daemon would have sent but the rate limit refused
  IcmpRateLimited: 26,
  // A TUN offload super-packet that could not be segmented (malformed virtio header or headers)
  EncapBadOffload: 27
} as const

export type Drop = (typeof Drop)[keyof typeof Drop]

export const DROP_COUNT = 28

/** Metric tag / log name of each reason, indexed by reason number. */
export const dropName: ReadonlyArray<string> = [
  "encap_bad_version",
  "encap_mode_disabled",
  "encap_truncated",
  "encap_bad_header",
  "encap_bad_checksum",
  "encap_ttl_zero",
  "encap_no_route",
  "encap_loop",
  "encap_too_big",
  "encap_send_error",
  "decap_remote_mismatch",
  "decap_local_mismatch",
  "decap_outer_bad_header",
  "decap_outer_bad_checksum",
  "decap_outer_truncated",
  "decap_fragment",
  "decap_inner_bad_version",
  "decap_inner_truncated",
  "decap_inner_bad_header",
  "decap_inner_bad_checksum",
  "decap_ttl_zero",
  "decap_ecn_ce_not_ect",
  "decap_bad_source",
  "decap_mode_disabled",
  "decap_oversize",
  "decap_write_error",
  "icmp_rate_limited",
  "encap_bad_offload"
]

/** A fresh, zeroed counter array. */
export const makeCounts = (): Uint32Array => new Uint32Array(DROP_COUNT)

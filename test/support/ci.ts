/** CI=true (set by .ci/run): tests whose prerequisites are missing fail instead of being skipped. */
export const ci = process.env["CI"] === "true"

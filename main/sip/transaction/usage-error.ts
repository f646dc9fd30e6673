/**
 * Thrown when the transaction user (TU) drives a transaction in a way the RFC forbids or
 * that cannot happen in a correct program: starting a client transaction twice, feeding it
 * before it was started, or handing the server transaction a response that RFC 4320 §4.1/§4.2
 * says must never be sent to a non-INVITE request. These are bugs in the caller, not
 * conditions of the network, so they are exceptions rather than events.
 */
export class TransactionUsageError extends Error {
  override readonly name = 'TransactionUsageError';
}

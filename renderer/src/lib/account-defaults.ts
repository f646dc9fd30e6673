import type { AccountSettings } from '../../../shared/api.js';

/** A new account as the form first shows it: through a server, listening on any free port. */
export const BLANK_ACCOUNT: AccountSettings = {
  sipAddress: '',
  displayName: '',
  registrar: '',
  outboundProxy: '',
  transport: 'udp',
  register: true,
  authUser: '',
  localAddress: '0.0.0.0',
  localPort: 0,
};

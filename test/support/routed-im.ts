/**
 * A protected IM as another client would send it through an IMDN server (RFC 5438 §6.5): the
 * CPIM carries imdn.IMDN-Record-Route headers under the sender's signature, and is encrypted
 * for the recipient. sipnote itself never adds IMDN-Record-Route, so tests that check where
 * our notifications go build such an IM by hand with this, and send it from a raw UDP peer.
 */
import { buildCpim } from '../../main/im/cpim.js';
import { AUTH_ENVELOPED_CONTENT_TYPE } from '../../main/im/smime/media-types.js';
import { IMDN_NAMESPACE, signEntity, signedDataEntity, type OurIdentity } from '../../main/im/smime/protect.js';
import { encryptAuthEnveloped } from '../../main/security/cms/auth-enveloped-data.js';

export interface RoutedImOptions {
  /** The sender's AoR (CPIM From, SIP From) and identity (signs). */
  readonly from: string;
  readonly sender: OurIdentity;
  /** The recipient's SIP URI (Request-URI, SIP To; the CPIM To too unless `cpimTo`) and certificate (encrypts). */
  readonly to: string;
  readonly cpimTo?: string;
  readonly recipientCertificateDer: Uint8Array;
  /** imdn.IMDN-Record-Route URIs, in order. */
  readonly routes: readonly string[];
  readonly messageId: string;
  /** imdn.Disposition-Notification, e.g. `positive-delivery, display`. */
  readonly dispositions: string;
  readonly text: string;
  /** Where the raw peer sends it from (its Via). */
  readonly viaPort: number;
}

/** The whole MESSAGE datagram. */
export async function routedProtectedIm(options: RoutedImOptions): Promise<Buffer> {
  const dateTime = new Date(Math.floor(Date.now() / 1000) * 1000);
  const cpim = buildCpim({
    from: { uri: options.from },
    to: [{ uri: options.cpimTo ?? options.to }],
    dateTime,
    namespaces: { imdn: IMDN_NAMESPACE },
    extraHeaders: [
      { ns: 'imdn', name: 'Message-ID', value: options.messageId },
      { ns: 'imdn', name: 'Disposition-Notification', value: options.dispositions },
      ...options.routes.map((route) => ({ ns: 'imdn', name: 'IMDN-Record-Route', value: `<${route}>` })),
    ],
    contentType: 'text/plain;charset=utf-8',
    content: new TextEncoder().encode(options.text),
  });
  const signed = await signEntity(new Uint8Array(Buffer.concat([Buffer.from('Content-Type: message/cpim\r\n\r\n', 'latin1'), cpim])), {
    ourIdentity: options.sender,
    signingTime: dateTime,
    includeSignerCertificate: true,
  });
  const body = await encryptAuthEnveloped({ content: signedDataEntity(signed), recipients: [{ certificateDer: options.recipientCertificateDer }] });
  const head = [
    `MESSAGE ${options.to} SIP/2.0`,
    `Via: SIP/2.0/UDP 127.0.0.1:${options.viaPort};branch=z9hG4bK${options.messageId};rport`,
    'Max-Forwards: 70',
    `From: <${options.from}>;tag=${options.messageId}`,
    `To: <${options.to}>`,
    `Call-ID: ${options.messageId}@127.0.0.1`,
    'CSeq: 1 MESSAGE',
    `Content-Type: ${AUTH_ENVELOPED_CONTENT_TYPE}`,
    'Content-Disposition: attachment; filename=smime.p7m; handling=required',
    `Content-Length: ${body.length}`,
    '',
    '',
  ].join('\r\n');
  return Buffer.concat([Buffer.from(head, 'latin1'), Buffer.from(body)]);
}

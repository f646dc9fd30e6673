/** The streams a command talks to, injected so commands run in tests without a child process. */
export interface CommandIo {
  readonly stdin: NodeJS.ReadableStream;
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
}

export const processIo: CommandIo = { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr };

export async function readAllStdin(stdin: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stdin) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
  return Buffer.concat(chunks);
}

/** Prints SIP traffic for `--trace`: direction, transport and peer, then the message as text. */
export function traceTo(io: CommandIo): (trace: { direction: 'in' | 'out'; transport: string; remote: { address: string; port: number }; data: Buffer }) => void {
  return (trace) => {
    const arrow = trace.direction === 'out' ? '>>' : '<<';
    io.stderr.write(`${arrow} ${trace.transport} ${trace.remote.address}:${trace.remote.port}\n${trace.data.toString('utf8')}\n`);
  };
}

import { createInterface } from 'node:readline';

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

/** Reads one line from a terminal without echoing it (passwords, passphrases). */
export function promptHidden(io: CommandIo, question: string): Promise<string> {
  return new Promise((resolve) => {
    const output = io.stderr as NodeJS.WriteStream;
    const rl = createInterface({ input: io.stdin, output, terminal: true });
    output.write(question);
    // readline has no public switch for echo; muting its writer hides what is typed.
    (rl as unknown as { _writeToOutput: (s: string) => void })._writeToOutput = () => undefined;
    rl.question('', (answer) => {
      rl.close();
      output.write('\n');
      resolve(answer);
    });
  });
}

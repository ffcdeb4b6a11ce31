/** `longshot probe <video> [--json]`: what ffprobe finds in a video or image. */
import type { Command } from 'commander';
import { type ToolVersion, toolVersions } from '../../media/ffmpeg.js';
import type { MediaInfo } from '../../media/probe.js';
import { probe } from '../../media/video.js';

function describe(
  input: string,
  info: MediaInfo,
  tools: { ffmpeg: ToolVersion; ffprobe: ToolVersion },
): string {
  const turned = info.rotation
    ? ` (stored ${info.codedWidth}x${info.codedHeight}, turned ${info.rotation}° clockwise)`
    : '';
  const rows: Array<[string, string]> = [
    ['input', input],
    ['kind', info.kind],
    ['container', info.container],
    ['codec', info.codec],
    ['size', `${info.width}x${info.height}${turned}`],
  ];
  if (info.kind === 'video') {
    rows.push(
      ['fps', `${Number(info.fps.toFixed(3))}${info.variableFrameRate ? ' (variable frame rate)' : ''}`],
      ['duration', info.durationSec === null ? 'unknown' : `${info.durationSec.toFixed(3)} s`],
      [
        'frames',
        info.frameCount === null
          ? 'unknown'
          : `${info.frameCount}${info.missingFrames ? ` (${info.missingFrames} missing: the file is truncated)` : info.frameCountExact ? '' : ' (from the header)'}`,
      ],
    );
  }
  rows.push(['bytes', String(info.sizeBytes)]);
  for (const s of info.streams) {
    const detail =
      s.type === 'video'
        ? ` ${s.width}x${s.height}`
        : s.type === 'audio'
          ? ` ${s.sampleRate} Hz, ${s.channels} ch`
          : '';
    rows.push([`stream ${s.index}`, `${s.type} ${s.codec ?? 'unknown codec'}${detail}`]);
  }
  for (const [name, t] of Object.entries(tools)) rows.push([name, `${t.version} (${t.path})`]);
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join('\n');
}

export function register(program: Command): void {
  program
    .command('probe')
    .description(
      'show what a video or image contains: size, rotation, frame rate, duration, frame count, streams',
    )
    .argument('<video>', 'a path, an http(s) URL or a data: URL')
    .option('--json', 'print the result as JSON')
    .option('--no-count', 'trust the header instead of counting every frame (faster on long videos)')
    .action(async (video: string, opts: { json?: boolean; count: boolean }) => {
      const info = await probe(video, { scan: opts.count });
      const tools = await toolVersions();
      process.stdout.write(
        opts.json ? `${JSON.stringify({ ...info, tools }, null, 2)}\n` : `${describe(video, info, tools)}\n`,
      );
    });
}

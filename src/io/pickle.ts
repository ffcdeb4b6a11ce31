/**
 * A restricted reader of the pickle inside a torch.save archive (data.pkl). It never executes anything: it
 * interprets the opcodes a state dict needs and knows exactly these callables —
 *   collections.OrderedDict                     → a Map
 *   torch._utils._rebuild_tensor_v2              → a tensor record (storage, offset, shape, strides)
 *   torch._utils._rebuild_parameter              → the tensor it wraps
 *   torch.<Type>Storage (persistent ids)         → a storage record (dtype, archive key, element count)
 * Any other global, callable or opcode is refused with a ModelError naming it, so a crafted file cannot make
 * it run code.
 */
import { ModelError } from '../errors.js';
import type { SafetensorsDType } from './safetensors-format.js';

export interface StorageRecord {
  kind: 'storage';
  dtype: SafetensorsDType;
  /** The member `data/<key>` of the archive. */
  key: string;
  numel: number;
}

export interface TensorRecord {
  kind: 'tensor';
  storage: StorageRecord;
  offset: number;
  shape: number[];
  stride: number[];
}

const STORAGE_DTYPES: Record<string, SafetensorsDType> = {
  FloatStorage: 'F32',
  DoubleStorage: 'F64',
  HalfStorage: 'F16',
  BFloat16Storage: 'BF16',
  LongStorage: 'I64',
  IntStorage: 'I32',
  ShortStorage: 'I16',
  CharStorage: 'I8',
  ByteStorage: 'U8',
  BoolStorage: 'BOOL',
};

const CALLABLES = new Set([
  'collections.OrderedDict',
  'torch._utils._rebuild_tensor_v2',
  'torch._utils._rebuild_parameter',
]);

interface Global {
  kind: 'global';
  name: string;
}

const MARK = Symbol('mark');

type Value = unknown;

const isGlobal = (v: Value): v is Global => (v as Global)?.kind === 'global';

/** Interprets `bytes` (a pickle of protocol ≤ 4); `where` names the file in errors. */
export function readTorchPickle(bytes: Uint8Array, where: string): Value {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const fail = (why: string) => new ModelError(`${where}: ${why}`);
  const stack: Value[] = [];
  const memo = new Map<number, Value>();
  let p = 0;
  const need = (n: number) => {
    if (p + n > bytes.length) throw fail('the pickle ends early');
  };
  /** Advances past n bytes, returning where they start. */
  const take = (n: number) => {
    need(n);
    p += n;
    return p - n;
  };
  const u8 = () => bytes[take(1)];
  const u16 = () => view.getUint16(take(2), true);
  const u32 = () => view.getUint32(take(4), true);
  const text = (n: number) => {
    need(n);
    p += n;
    return new TextDecoder().decode(bytes.subarray(p - n, p));
  };
  const line = () => {
    const end = bytes.indexOf(10, p);
    if (end < 0) throw fail('the pickle ends early');
    const s = new TextDecoder().decode(bytes.subarray(p, end));
    p = end + 1;
    return s;
  };
  const pop = () => {
    if (!stack.length) throw fail('a malformed pickle (empty stack)');
    return stack.pop();
  };
  const popMark = (): Value[] => {
    const i = stack.lastIndexOf(MARK);
    if (i < 0) throw fail('a malformed pickle (no mark)');
    const items = stack.splice(i);
    items.shift();
    return items;
  };
  const global = (module: string, name: string): Global => {
    const full = `${module}.${name}`;
    const storage = module === 'torch' && name in STORAGE_DTYPES;
    if (!storage && !CALLABLES.has(full))
      throw fail(`refuses the pickle global ${full}: only tensor storage records are read (no code is run)`);
    return { kind: 'global', name: full };
  };
  const setItems = (target: Value, items: Value[]) => {
    if (!(target instanceof Map)) throw fail('a malformed pickle (SETITEM on a non-dict)');
    for (let i = 0; i + 1 < items.length; i += 2) target.set(items[i], items[i + 1]);
  };
  const int = (v: Value, what: string): number => {
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw fail(`a tensor record with a bad ${what}`);
    return v;
  };
  const reduce = (fn: Value, args: Value): Value => {
    if (!isGlobal(fn) || !Array.isArray(args)) throw fail('a malformed pickle (REDUCE)');
    switch (fn.name) {
      case 'collections.OrderedDict': {
        const m = new Map();
        if (Array.isArray(args[0])) for (const kv of args[0]) if (Array.isArray(kv)) m.set(kv[0], kv[1]);
        return m;
      }
      case 'torch._utils._rebuild_tensor_v2': {
        const [storage, offset, shape, stride] = args as [StorageRecord, Value, Value[], Value[]];
        if (storage?.kind !== 'storage' || !Array.isArray(shape) || !Array.isArray(stride))
          throw fail('a malformed tensor record');
        return {
          kind: 'tensor',
          storage,
          offset: int(offset, 'offset'),
          shape: shape.map((d) => int(d, 'shape')),
          stride: stride.map((d) => int(d, 'stride')),
        } satisfies TensorRecord;
      }
      case 'torch._utils._rebuild_parameter':
        return args[0];
      default:
        throw fail(`refuses to call ${fn.name}: only tensor storage records are read (no code is run)`);
    }
  };
  for (;;) {
    const at = p;
    const op = u8();
    switch (op) {
      case 0x80: // PROTO
        u8();
        break;
      case 0x95: // FRAME
        take(8);
        break;
      case 0x7d: // EMPTY_DICT
        stack.push(new Map());
        break;
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x29: // EMPTY_TUPLE
        stack.push([]);
        break;
      case 0x28: // MARK
        stack.push(MARK);
        break;
      case 0x58: // BINUNICODE
        stack.push(text(u32()));
        break;
      case 0x8c: // SHORT_BINUNICODE
        stack.push(text(u8()));
        break;
      case 0x4a: // BININT
        stack.push(view.getInt32(take(4), true));
        break;
      case 0x4b: // BININT1
        stack.push(u8());
        break;
      case 0x4d: // BININT2
        stack.push(u16());
        break;
      case 0x8a: {
        // LONG1: little-endian two's complement of n bytes
        const n = u8();
        need(n);
        let v = 0n;
        for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[p + i]);
        if (n && bytes[p + n - 1] & 0x80) v -= 1n << BigInt(8 * n);
        p += n;
        stack.push(Number(v));
        break;
      }
      case 0x47: // BINFLOAT (big-endian)
        stack.push(view.getFloat64(take(8), false));
        break;
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x74: // TUPLE
        stack.push(popMark());
        break;
      case 0x85: // TUPLE1
        stack.push([pop()]);
        break;
      case 0x86: {
        const b = pop();
        stack.push([pop(), b]);
        break;
      }
      case 0x87: {
        const c = pop();
        const b = pop();
        stack.push([pop(), b, c]);
        break;
      }
      case 0x63: {
        // GLOBAL "module\nname\n"
        const module = line();
        stack.push(global(module, line()));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string')
          throw fail('a malformed pickle (STACK_GLOBAL)');
        stack.push(global(module, name));
        break;
      }
      case 0x71: // BINPUT
        memo.set(u8(), stack[stack.length - 1]);
        break;
      case 0x72: // LONG_BINPUT
        memo.set(u32(), stack[stack.length - 1]);
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, stack[stack.length - 1]);
        break;
      case 0x68: // BINGET
      case 0x6a: {
        // LONG_BINGET
        const k = op === 0x68 ? u8() : u32();
        if (!memo.has(k)) throw fail(`a malformed pickle (memo ${k} unset)`);
        stack.push(memo.get(k));
        break;
      }
      case 0x73: {
        // SETITEM
        const v = pop();
        const k = pop();
        setItems(stack[stack.length - 1], [k, v]);
        break;
      }
      case 0x75: {
        // SETITEMS
        const items = popMark();
        setItems(stack[stack.length - 1], items);
        break;
      }
      case 0x61: {
        // APPEND
        const v = pop();
        const list = stack[stack.length - 1];
        if (!Array.isArray(list)) throw fail('a malformed pickle (APPEND)');
        list.push(v);
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark();
        const list = stack[stack.length - 1];
        if (!Array.isArray(list)) throw fail('a malformed pickle (APPENDS)');
        list.push(...items);
        break;
      }
      case 0x52: {
        // REDUCE
        const args = pop();
        stack.push(reduce(pop(), args));
        break;
      }
      case 0x51: {
        // BINPERSID: ('storage', <Type>Storage, key, location, numel)
        const pid = pop();
        if (!Array.isArray(pid) || pid[0] !== 'storage' || !isGlobal(pid[1]))
          throw fail('refuses a persistent id that is not a storage record');
        const type = pid[1].name.replace(/^torch\./, '');
        const dtype = STORAGE_DTYPES[type];
        if (!dtype || typeof pid[2] !== 'string') throw fail(`refuses the storage record of ${pid[1].name}`);
        stack.push({
          kind: 'storage',
          dtype,
          key: pid[2],
          numel: int(pid[4], 'storage size'),
        } satisfies StorageRecord);
        break;
      }
      case 0x62: {
        // BUILD: an OrderedDict's attributes (a state dict's _metadata), which are not needed
        pop();
        if (!(stack[stack.length - 1] instanceof Map)) throw fail('refuses BUILD on anything but a dict');
        break;
      }
      case 0x2e: // STOP
        if (stack.length !== 1) throw fail('a malformed pickle (stack at STOP)');
        return stack[0];
      default:
        throw fail(
          `refuses pickle opcode 0x${op.toString(16)} at byte ${at}: only tensor storage records are read`,
        );
    }
  }
}

/** Registers the toy family in this process: `node --import tsx --import ./test/facade/toy-family/register.ts …`. */
import { registerFamily } from '../../../src/models/index.js';
import { toy } from './family.js';

registerFamily(toy);

/** Registers every backward rule (imported for its side effects by ../index.ts). */
import './layout.js';
import './elementwise.js';
import './linalg.js';
import './reduce.js';
import './rotary.js';
import './embedding.js';
import './fused.js';

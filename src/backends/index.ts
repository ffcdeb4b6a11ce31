/** Registers the built-in backends: the CPU always, CUDA lazily (nothing native loads until it is asked for). */
import './cpu/index.js';
import './cuda/index.js';

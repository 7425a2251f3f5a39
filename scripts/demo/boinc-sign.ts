import { constants, createHash, createPublicKey, generateKeyPairSync, privateEncrypt, publicDecrypt, type KeyObject } from 'node:crypto';

/**
 * BOINC's code-signing formats (lib/crypt.cpp, BOINC 7.20), made with node's crypto because Debian does
 * not package crypt_prog: a key is its bit count on a line, then the hex of R_RSA_PUBLIC_KEY's modulus
 * and exponent (each right-aligned in MAX_RSA_MODULUS_LEN = 128 bytes), 32 bytes a line, ending ".";
 * a file signature is RSA_private_encrypt (PKCS#1 v1.5 type 1) of the file's md5 as 32 hex characters,
 * in the same hex layout (sign_file / check_file_signature).
 */
const MAX_RSA_MODULUS_LEN = 128;

function hexBlock(bytes: Buffer): string {
  let out = '';
  for (let i = 0; i < bytes.length; i += 32) out += bytes.subarray(i, i + 32).toString('hex') + '\n';
  return `${out}.\n`;
}

function rightAligned(b64url: string): Buffer {
  const raw = Buffer.from(b64url, 'base64url');
  const out = Buffer.alloc(MAX_RSA_MODULUS_LEN);
  raw.copy(out, MAX_RSA_MODULUS_LEN - raw.length);
  return out;
}

export interface CodeSignKey {
  /** The public key as BOINC writes code_sign_public (the reply's <code_sign_key>). */
  publicText: string;
  /** <file_signature> text for a file's bytes. */
  sign(bytes: Buffer): string;
}

export function makeCodeSignKey(): CodeSignKey {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 1024, publicExponent: 65537 });
  const jwk = (publicKey as KeyObject).export({ format: 'jwk' });
  const publicText = `1024\n${hexBlock(Buffer.concat([rightAligned(jwk.n!), rightAligned(jwk.e!)]))}`;
  return {
    publicText,
    sign(bytes: Buffer): string {
      const md5 = createHash('md5').update(bytes).digest('hex');
      return hexBlock(privateEncrypt({ key: privateKey, padding: constants.RSA_PKCS1_PADDING }, Buffer.from(md5)));
    },
  };
}

/** BOINC's hex layout back to bytes (lib/crypt.cpp sscan_hex_data: hex pairs, newlines skipped, stops at '.'). */
function scanHex(text: string): Buffer {
  return Buffer.from(text.split('.')[0]!.replace(/\s+/g, ''), 'hex');
}

/**
 * check_file_signature as the 7.20 client does it: decrypt the signature with the project's public key
 * (RSA_public_decrypt, PKCS#1 type 1) and compare with the file's md5 in hex.
 */
export function checkFileSignature(publicText: string, bytes: Buffer, signatureText: string): boolean {
  const nl = publicText.indexOf('\n');
  const bits = Number(publicText.slice(0, nl));
  const data = scanHex(publicText.slice(nl + 1));
  const strip = (b: Buffer) => { let i = 0; while (i < b.length - 1 && b[i] === 0) i++; return b.subarray(i); };
  const n = strip(data.subarray(0, MAX_RSA_MODULUS_LEN));
  const e = strip(data.subarray(MAX_RSA_MODULUS_LEN, 2 * MAX_RSA_MODULUS_LEN));
  if (bits !== n.length * 8) return false;
  const key = createPublicKey({ key: { kty: 'RSA', n: n.toString('base64url'), e: e.toString('base64url') }, format: 'jwk' });
  const clear = publicDecrypt({ key, padding: constants.RSA_PKCS1_PADDING }, scanHex(signatureText));
  return clear.toString('latin1') === createHash('md5').update(bytes).digest('hex');
}

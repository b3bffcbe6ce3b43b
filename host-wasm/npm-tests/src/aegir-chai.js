// `aegir/chai`, which interface-blockstore-tests imports: chai with the plugins aegir
// configures, in aegir's order (aegir itself is a whole build toolchain; this is its chai).
import chai from 'chai';
import chaiAsPromised from 'chai-as-promised';
import chaiBites from 'chai-bites';
import chaiParentheses from 'chai-parentheses';
import chaiString from 'chai-string';
import chaiSubset from 'chai-subset';

chai.use(chaiAsPromised);
chai.use(chaiParentheses);
chai.use(chaiSubset);
chai.use(chaiBites);
chai.use(chaiString);

export const expect = chai.expect;
export const assert = chai.assert;
export { chai };

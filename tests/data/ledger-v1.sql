PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE alembic_version (
	version_num VARCHAR(32) NOT NULL, 
	CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);
INSERT INTO alembic_version VALUES('0005');
CREATE TABLE ledger_meta (
	id INTEGER NOT NULL, 
	chain_format VARCHAR(40) NOT NULL, 
	params TEXT NOT NULL, 
	genesis_hash VARCHAR(64) NOT NULL, 
	created_at VARCHAR(32) NOT NULL, 
	PRIMARY KEY (id)
);
INSERT INTO ledger_meta VALUES(1,'tokenmall-journal-v1','{"buyer_share": "0.7", "contribution_rate": "0.3", "dividend_rate": "0.2", "dividend_remainder": "carry", "exit_enabled": true, "initial_price": "1", "level_dividend_rate": "0.1", "level_thresholds": ["100.00000000", "300.00000000", "1000.00000000", "3000.00000000", "10000.00000000", "30000.00000000", "100000.00000000", "300000.00000000", "1000000.00000000", "3000000.00000000"], "quota_multiple": "2", "referral_rates": ["0", "0"], "sell_fee_rate": "0.1", "total_issuance": "100000000.00000000"}','c6d562b72bc6e21fb516ad42a24f060702dd74063405ca17ba55e6837e8a7563','2026-11-30T23:47:38.935624Z');
CREATE TABLE ledger_head (
	id INTEGER NOT NULL, 
	seq BIGINT NOT NULL, 
	hash VARCHAR(64) NOT NULL, projected_seq BIGINT DEFAULT '0' NOT NULL, 
	PRIMARY KEY (id)
);
INSERT INTO ledger_head VALUES(1,18,'67592847ebe7f07c7451cffce92c9ec4e52d92522845e5987ab382a3730c5ea6',18);
CREATE TABLE journal (
	seq BIGINT NOT NULL, 
	recorded_at VARCHAR(32) NOT NULL, 
	idem_key VARCHAR(255), 
	outcome VARCHAR(40) NOT NULL, 
	command TEXT NOT NULL, 
	hash VARCHAR(64) NOT NULL, actor VARCHAR(80), 
	PRIMARY KEY (seq)
);
INSERT INTO journal VALUES(1,'2026-11-30T23:47:38.940304Z',NULL,'ok','{"op":"register","user":"alice"}','d2b939b8ef4b8501140fe9c13716bd2194e73450bd1ea28ff6ddc4c6bb4586dc','cli:root');
INSERT INTO journal VALUES(2,'2026-11-30T23:47:38.940304Z',NULL,'ok','{"op":"register","referrer":"alice","user":"bob smith"}','7a027c4c20de3bfbfcd055096faf7685fd82e5f03cac30a6a637a5b31929a49c','cli:root');
INSERT INTO journal VALUES(3,'2026-11-30T23:47:38.940304Z',NULL,'ok','{"merchant":"shop/1","op":"register_merchant"}','ce8321fac8b48b4d1c5371402e61f7636f7a3362c6e29f4c6f7b33e1cbccdb17','cli:root');
INSERT INTO journal VALUES(4,'2026-11-30T23:47:38.940304Z',NULL,'ok','{"amount":"100.00","id":"o 1","op":"order","region":"abc","user":"alice"}','ca6b9bf4c59a45a692926b10d78766c9a8ae402bc9f91f686cd28d72c6569c3d','cli:root');
INSERT INTO journal VALUES(5,'2026-11-30T23:47:38.940304Z',NULL,'ok','{"amount":"100.00","id":"o2","op":"order","region":null,"user":"bob smith"}','0969a27be60b1c7ae6559ab2429fc5cfd61f7dc85705828cac4ad04178217313','cli:root');
INSERT INTO journal VALUES(6,'2026-11-30T23:47:38.940304Z',NULL,'insufficient_stable','{"amount":"5.00","id":"o3","merchant":"shop/1","op":"order","pay":"stable","user":"alice"}','fe3e95d9b8b0caac5811b91d3c406f542fc632669ed21d10812bbcba05faf60d','cli:root');
INSERT INTO journal VALUES(7,'2026-11-30T23:47:38.940304Z',NULL,'ok','{"agent":"x y","op":"sell","points":"10","user":"alice"}','29c1d6847b9b063a5c507d9d55c21eac9044ed3f2dc1b2f50c3942105900b3ad','cli:root');
INSERT INTO journal VALUES(8,'2026-11-30T23:47:38.940304Z',NULL,'invalid_amount','{"op":"sell","points":null,"user":"alice"}','8f6a9419faec3f2d1f020599bfcf85c660a1fcaff7dcccb2d338d95528e27b9c','cli:root');
INSERT INTO journal VALUES(9,'2026-11-30T23:47:38.940304Z',NULL,'unknown_op','{"op":null}','4b06738ec0acb1677e293627bcf5895ae49a6ef482671d26a0eb6b87b2bbbf0e','cli:root');
INSERT INTO journal VALUES(10,'2026-11-30T23:47:38.940304Z',NULL,'unknown_op','{"account":"alice","op":"freeze"}','1f89cfa6f4700e83349a91d911ab8e710c1286ccf7c3935ebd39c51dc22748c2','cli:root');
INSERT INTO journal VALUES(11,'2026-11-30T23:47:38.940304Z',NULL,'unknown_op','{"amount":"1.00","id":"w1","op":"withdraw","user":"alice"}','4b1c691a261bb565c60f6c9fa912699a24799458848895b511fa53c9df912e48','cli:root');
INSERT INTO journal VALUES(12,'2026-11-30T23:47:38.940304Z',NULL,'invalid_params','{"op":"set_params","params":{"withdraw_min":"5.00"}}','8adca82871ac608c629e979d1c10748b9aa4ef59aa367db2c1e10bf939d2feb3','cli:root');
INSERT INTO journal VALUES(13,'2026-11-30T23:47:38.940304Z',NULL,'ok','{"op":"set_params","params":{"sell_fee_rate":"0.05"}}','8b7cae79037857771b49b3a055829d0b60bd9dcc61088dbba74be36085c1e14c','cli:root');
INSERT INTO journal VALUES(14,'2026-11-30T23:47:38.940304Z',NULL,'ok','{"op":"convert","points":"2","user":"bob smith"}','c0795900aed1bbef8fe628b52d9ab6dab4ad5d239bb502ed52e70e7b115cd72a','cli:root');
INSERT INTO journal VALUES(15,'2026-11-30T23:47:38.940304Z',NULL,'ok','{"op":"settle_day"}','7603bccea666c85e7fdabb32bbc1604cb083822bd49cf39df64d0c06c6485c6a','cli:root');
INSERT INTO journal VALUES(16,'2026-11-30T23:47:38.940304Z',NULL,'ok','{"amount":"3000.00","id":"o4","op":"order","user":"bob smith"}','bd9b0133cabdba061178a450f4c850177ae8a3894960aec076f2ee05c5fdf23c','cli:root');
INSERT INTO journal VALUES(17,'2026-11-30T23:47:38.940304Z',NULL,'invalid_amount','{"amount":"0.00","merchant":"shop/1","op":"merchant_redeem"}','af3044c8ec849ae69ba691cb888155c52a10ac39b4027e59d360869df1d4bf2a','cli:root');
INSERT INTO journal VALUES(18,'2026-11-30T23:47:38.940304Z',NULL,'ok','{"op":"sell","points":"all","user":"bob smith"}','67592847ebe7f07c7451cffce92c9ec4e52d92522845e5987ab382a3730c5ea6','cli:root');
CREATE TABLE snapshots (
	seq BIGINT NOT NULL, 
	hash VARCHAR(64) NOT NULL, 
	digest VARCHAR(64) NOT NULL, 
	state BLOB NOT NULL, 
	created_at VARCHAR(32) NOT NULL, 
	PRIMARY KEY (seq)
);
INSERT INTO snapshots VALUES(18,'67592847ebe7f07c7451cffce92c9ec4e52d92522845e5987ab382a3730c5ea6','74b3b4e16d2691fd3535f215c250bfa8392b39ce0cb97e5dd714472294acb407',X'789c6d53db92a32010fd95299ea9591063a2bf6259148964431582cb25b3a9a9f9f76d40c7641d7d404f9f3e7da1fb13dda5f3ca1ad45518cdc289c9a3ee1329a382129acf4e5d24ea1045185dac094e9d63003a7722249cbc33b09ce3433aee6fc215ec08989357e91c48242668f688004ad08051b00170e57d14a6a893e5795f3f80eaa5d6fc2ae5168a1c00fe13c19b4f510735eb845700cabf2a7069c459cb1175c14589d1a8ee6a9466dcfc1353cbbbd47c6fa3dfb67073d2dfac1e73d2f43529f6fa4bc9cebcb3ef087bc69ef203e707d213343c172c27a1cc281d547611ce3dd0d7d2f47cb7b3b51a75c7635d4393e33ceb07ea285b95304a1793dac8daa66e2ac22a724a57ec4c064f6c038393c247d0efaacdddcfdcc6e08330a332bf5157b31aa8a34851f2c9bdd06922d8e250524c12605f6d55b1c11445936e82bcce1f206d93196bd59ecf42e5acdb16a34999c0936b4e819409293245927fa8701b9df8c84d79d2e14bc0a2aee5355858111e2c2f7dfb1fd4225cad9bc0004dd6c2877567fadce1adb143aec0c709160eac3d123af1b0895a63fabd02989e0e0d86a3695895ce03cd4742af90ac1c708fcef6fce627a80046619121b8aadbc43c30726c6a5ce1539312009cd66c71851c20fce5264c2839c0a0cfbf68f2863799ad1bd7fc6c9d567b8bb4dc57de2e8adbfcd3148c351073998a7ed8825db4f572e4cfa26f108da61a6c953e8074973ee46b02cfb28369d07a3a7cfd034c7a53bd','2026-11-30T23:47:38.944157Z');
CREATE TABLE ingest_sources (
	digest VARCHAR(64) NOT NULL, 
	path TEXT NOT NULL, 
	lines_done BIGINT NOT NULL, 
	last_seq BIGINT NOT NULL, 
	updated_at VARCHAR(32) NOT NULL, 
	PRIMARY KEY (digest)
);
INSERT INTO ingest_sources VALUES('378a83aa969674c6ebe7184e8e98c71c79900aff128318a4d91e8ba8e4d7936c','ledger-v1.jsonl',18,18,'2026-11-30T23:47:38.940304Z');
CREATE TABLE statement_lines (
	account TEXT NOT NULL, 
	seq BIGINT NOT NULL, 
	op VARCHAR(40) NOT NULL, 
	balances TEXT NOT NULL, 
	PRIMARY KEY (account, seq)
);
INSERT INTO statement_lines VALUES('alice',1,'register','0,0,0,0,0,0,0,0,0');
INSERT INTO statement_lines VALUES('bob smith',2,'register','0,0,0,0,0,0,0,0,0');
INSERT INTO statement_lines VALUES('shop/1',3,'register_merchant','0,0,0');
INSERT INTO statement_lines VALUES('alice',4,'order','2100000000,0,0,20000,0,0,0,0,0');
INSERT INTO statement_lines VALUES('bob smith',5,'order','1470000000,0,0,20000,0,0,0,0,0');
INSERT INTO statement_lines VALUES('alice',7,'sell','1100000000,0,0,18488,0,1512,0,0,0');
INSERT INTO statement_lines VALUES('bob smith',14,'convert','1270000000,349,0,19651,0,0,0,0,0');
INSERT INTO statement_lines VALUES('bob smith',16,'order','37346203208,2492,0,617508,2,0,0,2143,0');
INSERT INTO statement_lines VALUES('bob smith',18,'sell','0,2492,0,530764,2,86744,0,2143,0');
CREATE TABLE price_days (
	day BIGINT NOT NULL, 
	seq BIGINT NOT NULL, 
	price TEXT NOT NULL, 
	pool TEXT NOT NULL, 
	supply TEXT NOT NULL, 
	sales TEXT NOT NULL, 
	dividends TEXT NOT NULL, 
	PRIMARY KEY (day)
);
INSERT INTO price_days VALUES(0,15,'1.74630350','44.88','25.70000000','200.00','39.99');
CREATE TABLE IF NOT EXISTS "api_tokens" (
	token_hash VARCHAR(64) NOT NULL, 
	role VARCHAR(16) NOT NULL, 
	account VARCHAR(64), 
	created_at VARCHAR(32) NOT NULL, 
	token_id VARCHAR(16) NOT NULL, 
	expires_at VARCHAR(32), 
	revoked_at VARCHAR(32), 
	note VARCHAR(200), 
	PRIMARY KEY (token_hash), 
	CONSTRAINT uq_api_tokens_token_id UNIQUE (token_id)
);
CREATE TABLE payments (
	payment_id VARCHAR(64) NOT NULL, 
	seq BIGINT NOT NULL, 
	PRIMARY KEY (payment_id)
);
CREATE TABLE consumer_slots (
	account TEXT NOT NULL, 
	slot BIGINT NOT NULL, 
	PRIMARY KEY (account)
);
INSERT INTO consumer_slots VALUES('alice',0);
INSERT INTO consumer_slots VALUES('bob smith',1);
CREATE TABLE dividend_blocks (
	block INTEGER NOT NULL, 
	seq BIGINT NOT NULL, 
	payments BLOB NOT NULL, 
	PRIMARY KEY (block, seq)
);
INSERT INTO dividend_blocks VALUES(0,15,X'40070000000000005f08000000000000');
CREATE INDEX ix_journal_idem_key ON journal (idem_key, seq) WHERE idem_key IS NOT NULL;
CREATE INDEX ix_journal_rejected ON journal (seq) WHERE outcome <> 'ok';
COMMIT;

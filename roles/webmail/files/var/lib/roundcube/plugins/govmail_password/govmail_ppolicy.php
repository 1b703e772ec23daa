<?php
/**
 * The directory's password policy as the owner meets it: bind and LDAP Password Modify
 * (RFC 3062) AS THE OWNER, both with the password-policy request control
 * (draft-behera-ldap-password-policy, OpenLDAP's ppolicy overlay), so the server's own reason
 * is read from its response control instead of a bare constraintViolation.
 *
 * Used by the govmail_password plugin (forced change after an administrator set the password,
 * REQUIREMENTS P2) and by the password plugin's "govmail" driver (the owner's change in
 * Settings, P1). PHP 8.4's ldap extension: ldap_bind_ext/ldap_parse_result and the fifth
 * (controls) argument of ldap_exop_passwd (php.net/ldap-exop-passwd); checked against slapd
 * 2.6 + ppolicy + ppm in notes/debian13.md §1.
 *
 * Configuration (rcube_config, written by roles/webmail):
 *   govmail_password_ldap_uri     string  ldap://host:389 (StartTLS is always required)
 *   govmail_password_ldap_base    string  base DN of the mailboxes
 *   govmail_password_ldap_filter  string  filter of a mailbox, %s = the escaped address
 *   govmail_password_ldap_bind_dn / govmail_password_ldap_bind_pass
 *                                 string  read-only account that finds a mailbox's DN
 * The TLS certificate is verified by libldap (LDAPTLS_CACERT, LDAPTLS_REQCERT in the PHP pool).
 */
class govmail_ppolicy
{
    // ppolicy response control "error" values (draft-behera §6.2, OpenLDAP ppolicy.c)
    const PASSWORD_EXPIRED = 0;
    const ACCOUNT_LOCKED = 1;
    const CHANGE_AFTER_RESET = 2;
    const INSUFFICIENT_QUALITY = 5;
    const TOO_SHORT = 6;
    const TOO_YOUNG = 7;
    const IN_HISTORY = 8;

    // reasons returned by change(), each a label of the govmail_password plugin ("reason_<r>")
    const REASONS = [
        self::INSUFFICIENT_QUALITY => 'quality',
        self::TOO_SHORT => 'tooshort',
        self::TOO_YOUNG => 'tooyoung',
        self::IN_HISTORY => 'history',
    ];

    const LDAP_INVALID_CREDENTIALS = 0x31;
    const LDAP_CONSTRAINT_VIOLATION = 0x13;

    private $config;

    /** @param rcube_config $config Roundcube's configuration (the keys above). */
    public function __construct($config)
    {
        $this->config = $config;
    }

    /**
     * What the directory says when the owner logs in with this password.
     *
     * Binds as the owner only when the entry carries pwdReset (an administrator set the
     * password), read first with the service account: every other login is left to IMAP, whose
     * bind is then the only one, so a wrong password typed in the webmail counts once towards
     * the directory's lockout (ppolicy pwdMaxFailure), not twice. Dovecot refuses an entry with
     * pwdReset without binding (its passdb filter), so there too one guess is one failure.
     *
     * @param string $address the mailbox address (user@domain)
     * @param string $password the password typed
     * @return string 'change' (bind accepted with changeAfterReset: an administrator set the
     *                password), 'imap' (no reset pending: IMAP decides, nothing was bound),
     *                'ok' (a reset was pending, yet the server asked for no change),
     *                'refused' (a reset is pending and the password is wrong, or the account
     *                is locked or unknown) or 'unavailable' (no answer, TLS failure)
     */
    public function login_state($address, $password)
    {
        if ($password === '') {
            return 'refused';  // an empty password would be an anonymous bind, which succeeds
        }
        try {
            $entry = $this->find_entry($address);
            if ($entry === null) {
                return 'refused';
            }
            if (!$entry['reset']) {
                return 'imap';
            }
            $dn = $entry['dn'];
            $conn = $this->connect();
            list($code, $error) = $this->bind($conn, $dn, $password);
            ldap_unbind($conn);
        }
        catch (RuntimeException $e) {
            rcube::raise_error(['code' => 600, 'type' => 'ldap', 'message' => 'govmail_password: ' . $e->getMessage()], true, false);
            return 'unavailable';
        }
        if ($code !== 0) {
            return 'refused';
        }
        return $error === self::CHANGE_AFTER_RESET ? 'change' : 'ok';
    }

    /**
     * The owner changes the password: bind as the owner with $old, Password Modify to $new.
     *
     * @return array ['ok' => true] or ['ok' => false, 'reason' => one of 'quality', 'tooshort',
     *               'tooyoung', 'history' (the server's ppolicy error), 'wrongpassword' (the bind
     *               with $old failed), 'refused' (another constraintViolation; 'detail' has the
     *               server's diagnostic), 'unavailable' (no answer)]
     */
    public function change($address, $old, $new)
    {
        if ($old === '') {
            return ['ok' => false, 'reason' => 'wrongpassword'];  // not an anonymous bind
        }
        try {
            $dn = $this->find_dn($address);
            if ($dn === null) {
                return ['ok' => false, 'reason' => 'wrongpassword'];
            }
            $conn = $this->connect();
            list($code, ) = $this->bind($conn, $dn, $old);
            if ($code !== 0) {
                ldap_unbind($conn);
                return ['ok' => false, 'reason' => 'wrongpassword'];
            }
            ldap_set_option($conn, LDAP_OPT_SERVER_CONTROLS, [['oid' => LDAP_CONTROL_PASSWORDPOLICYREQUEST]]);
            $controls = [];
            $done = @ldap_exop_passwd($conn, $dn, $old, $new, $controls);
            $errno = ldap_errno($conn);
            ldap_get_option($conn, LDAP_OPT_DIAGNOSTIC_MESSAGE, $diag);
            ldap_unbind($conn);
        }
        catch (RuntimeException $e) {
            rcube::raise_error(['code' => 600, 'type' => 'ldap', 'message' => 'govmail_password: ' . $e->getMessage()], true, false);
            return ['ok' => false, 'reason' => 'unavailable'];
        }
        if ($done) {
            return ['ok' => true];
        }
        $error = $controls[LDAP_CONTROL_PASSWORDPOLICYRESPONSE]['value']['error'] ?? null;
        if ($error !== null && isset(self::REASONS[$error])) {
            return ['ok' => false, 'reason' => self::REASONS[$error]];
        }
        if ($errno === self::LDAP_CONSTRAINT_VIOLATION) {
            return ['ok' => false, 'reason' => 'refused', 'detail' => (string) $diag];
        }
        rcube::raise_error(['code' => 600, 'type' => 'ldap',
            'message' => "govmail_password: password modify for $dn failed: " . ldap_err2str($errno) . " $diag"], true, false);
        return ['ok' => false, 'reason' => 'unavailable'];
    }

    /** The DN of the mailbox with this address, or null; read with the service account. */
    private function find_dn($address)
    {
        $entry = $this->find_entry($address);
        return $entry === null ? null : $entry['dn'];
    }

    /**
     * The mailbox with this address, read with the service account (its ACL reads operational
     * attributes: roles/openldap), or null.
     *
     * @return array|null ['dn' => string, 'reset' => bool (pwdReset is TRUE)]
     */
    private function find_entry($address)
    {
        $conn = $this->connect();
        if (!@ldap_bind($conn, $this->config->get('govmail_password_ldap_bind_dn'), $this->config->get('govmail_password_ldap_bind_pass'))) {
            throw new RuntimeException('service bind failed: ' . ldap_error($conn));
        }
        $filter = sprintf($this->config->get('govmail_password_ldap_filter'), ldap_escape($address, '', LDAP_ESCAPE_FILTER));
        $result = @ldap_search($conn, $this->config->get('govmail_password_ldap_base'), $filter, ['pwdReset'], 0, 2);
        if ($result === false) {
            throw new RuntimeException('search failed: ' . ldap_error($conn));
        }
        $entries = ldap_get_entries($conn, $result);
        ldap_unbind($conn);
        if (($entries['count'] ?? 0) !== 1) {
            return null;
        }
        // ldap_get_entries lowercases attribute names
        return ['dn' => $entries[0]['dn'], 'reset' => strtoupper($entries[0]['pwdreset'][0] ?? '') === 'TRUE'];
    }

    /** A connection after StartTLS (the directory refuses simple binds without TLS). */
    private function connect()
    {
        $conn = ldap_connect($this->config->get('govmail_password_ldap_uri'));
        if ($conn === false) {
            throw new RuntimeException('bad LDAP URI ' . $this->config->get('govmail_password_ldap_uri'));
        }
        ldap_set_option($conn, LDAP_OPT_PROTOCOL_VERSION, 3);
        ldap_set_option($conn, LDAP_OPT_REFERRALS, 0);
        ldap_set_option($conn, LDAP_OPT_NETWORK_TIMEOUT, 10);
        if (!@ldap_start_tls($conn)) {
            throw new RuntimeException('StartTLS failed: ' . ldap_error($conn));
        }
        return $conn;
    }

    /**
     * Simple bind with the password-policy request control.
     *
     * @return array [LDAP result code (0 = success), ppolicy error (int) or null]
     */
    private function bind($conn, $dn, $password)
    {
        $result = @ldap_bind_ext($conn, $dn, $password, [['oid' => LDAP_CONTROL_PASSWORDPOLICYREQUEST]]);
        if ($result === false) {
            throw new RuntimeException('bind failed: ' . ldap_error($conn));
        }
        $code = -1;
        $controls = [];
        if (!ldap_parse_result($conn, $result, $code, $matched, $message, $referrals, $controls)) {
            throw new RuntimeException('unreadable bind result: ' . ldap_error($conn));
        }
        return [$code, $controls[LDAP_CONTROL_PASSWORDPOLICYRESPONSE]['value']['error'] ?? null];
    }
}

<?php
/**
 * govmail_password: the directory's password rules in the webmail (REQUIREMENTS P1, P2).
 *
 * 1. Forced change (P2; LC §6.3, NB §6.3, QT §9.2.a): on Roundcube's `authenticate` hook,
 *    before the IMAP login, an entry with pwdReset (read with the service account) has the
 *    owner's password bound to the directory with the password-policy control (any other
 *    login binds only through IMAP: one wrong guess is one failure towards the lockout). When the server answers changeAfterReset (an administrator set
 *    the password: `govmail account add`, `reset-password`), the login stops and the login page
 *    becomes a change form (hook `loginform_content`): current password, new one, again. That
 *    form posts to the same login action; the change is an LDAP Password Modify as the owner,
 *    and on success the login goes on with the new password (IMAP refuses the administrator's
 *    one: Dovecot's passdb filter has (!(pwdReset=TRUE))). The session cannot carry state
 *    between the two requests (index.php kills it before `authenticate`), so the form asks for
 *    the current password again; nothing is kept in the page.
 * 2. The owner's change in Settings (P1): the stock `password` plugin with the "govmail" driver
 *    (plugins/password/drivers/govmail.php, installed by roles/webmail), which calls
 *    govmail_ppolicy and shows the server's reason in the user's language.
 * 3. The rules shown on both forms come from the policy profile (govmail_policy: minimum
 *    length, required character classes, special characters), written into the configuration
 *    by roles/webmail: `govmail_password_min_length` (int), `govmail_password_classes`
 *    (list of lower, upper, digit, special), `govmail_password_special` (string).
 *
 * Must be listed before `password` in $config['plugins']: it supplies the password plugin's
 * `passwdconstraintviolation` label, which Debian's vi_VN localization lacks (first added wins).
 */
class govmail_password extends rcube_plugin
{
    public $task = 'login|logout|settings';

    /** @var string|null label of the reason the change form shows, null = normal login form */
    private $change_reason = null;

    function init()
    {
        require_once __DIR__ . '/govmail_ppolicy.php';

        $this->add_texts('localization/');
        $rcmail = rcmail::get_instance();
        if ($rcmail->task == 'settings') {
            // the password plugin's prefix of a refusal (Debian's vi_VN lacks it: notes §1)
            $rcmail->load_language($_SESSION['language'] ?? null, [
                'password.passwdconstraintviolation' => $this->gettext('refusedprefix'),
            ]);
        }
        if ($rcmail->task == 'login') {
            // Roundcube's answer to a login held back by login_rate_limit (issue 12, brute
            // force); Debian's vi_VN lacks it and would show it in English. Merged (3rd
            // argument): the English text is already there, and an added text never replaces one
            $rcmail->load_language($_SESSION['language'] ?? null, [], [
                'accountlocked' => $this->gettext('accountlocked'),
            ]);
        }
        $this->add_hook('authenticate', [$this, 'authenticate']);
        $this->add_hook('loginform_content', [$this, 'loginform_content']);
    }

    /**
     * Hook `authenticate`: args host, user, pass, valid, abort, error. Sets abort + error
     * (a translated text) when the owner must change the password first or the change failed;
     * on a successful change, pass becomes the new password.
     */
    function authenticate($args)
    {
        if (empty($args['valid']) || !empty($args['abort']) || $args['user'] === '' || strpos($args['user'], '*') !== false) {
            return $args;  // invalid request, another plugin's decision, or a clerk's delegated login
        }
        $rcmail = rcmail::get_instance();
        $address = $this->address($args['user']);
        $directory = new govmail_ppolicy($rcmail->config);

        if (!isset($_POST['_govmail_newpass'])) {
            if ($directory->login_state($address, $args['pass']) === 'change') {
                return $this->stop($args, 'mustchange');
            }
            return $args;  // imap, ok, refused or unavailable: IMAP decides as before
        }

        $new = rcube_utils::get_input_string('_govmail_newpass', rcube_utils::INPUT_POST, true);
        $again = rcube_utils::get_input_string('_govmail_confpass', rcube_utils::INPUT_POST, true);
        if ($new === '' || $new !== $again) {
            return $this->stop($args, 'mismatch');
        }
        $result = $directory->change($address, $args['pass'], $new);
        if (!$result['ok']) {
            return $this->stop($args, 'reason_' . $result['reason'], $result['detail'] ?? null);
        }
        rcube::write_log('password', sprintf('Password changed after an administrator reset for %s from %s',
            $address, rcube_utils::remote_ip()));
        $args['pass'] = $new;
        return $args;
    }

    /**
     * Hook `loginform_content`: after a stop, the login form becomes the change form (the
     * address kept, "current password", new password twice, the reason and the rules).
     */
    function loginform_content($content)
    {
        if ($this->change_reason === null) {
            return $content;
        }
        $content['inputs']['password']['title'] = html::label('rcmloginpwd', rcube::Q($this->gettext('curpasswd')));
        foreach (['newpass' => 'newpasswd', 'confpass' => 'confpasswd'] as $name => $label) {
            $field = new html_passwordfield(['name' => '_govmail_' . $name, 'id' => 'govmail-' . $name,
                'required' => 'required', 'autocomplete' => 'new-password', 'class' => 'form-control']);
            $content['inputs'][$name] = [
                'title' => html::label('govmail-' . $name, rcube::Q($this->gettext($label))),
                'content' => $field->show(),
            ];
        }
        $notice = html::div(['id' => 'govmail-password-reason', 'class' => 'boxwarning'], rcube::Q($this->change_reason))
            . html::tag('ul', ['id' => 'govmail-password-rules', 'class' => 'hint'], implode('', array_map(
                function ($rule) { return html::tag('li', null, rcube::Q($rule)); }, $this->rules())));
        $content['inputs'] = ['govmail_notice' => ['content' => $notice]] + $content['inputs'];
        return $content;
    }

    /**
     * The rules of the policy profile, as sentences in the user's language (list of strings).
     * Also the password plugin's strength rules (drivers/govmail.php).
     */
    public function rules()
    {
        $config = rcmail::get_instance()->config;
        $rules = [$this->gettext(['name' => 'rule_length', 'vars' => ['n' => (int) $config->get('govmail_password_min_length')]])];
        foreach ((array) $config->get('govmail_password_classes', []) as $class) {
            $rules[] = $this->gettext(['name' => 'rule_' . $class, 'vars' => ['chars' => $config->get('govmail_password_special')]]);
        }
        $rules[] = $this->gettext('rule_history');
        return $rules;
    }

    /**
     * The text of a refusal reason ('quality', 'tooshort', 'tooyoung', 'history',
     * 'wrongpassword', 'refused', 'unavailable'), with the server's diagnostic for 'refused'.
     */
    public function reason_text($reason, $detail = null)
    {
        $text = $this->gettext(['name' => 'reason_' . $reason,
            'vars' => ['n' => (int) rcmail::get_instance()->config->get('govmail_password_min_length')]]);
        return $detail ? "$text ($detail)" : $text;
    }

    private function stop($args, $label, $detail = null)
    {
        $this->change_reason = strpos($label, 'reason_') === 0
            ? $this->reason_text(substr($label, 7), $detail)
            : $this->gettext($label);
        $args['abort'] = true;
        $args['error'] = $this->change_reason;
        return $args;
    }

    /** The login name as a mailbox address: a bare local part gets username_domain. */
    private function address($user)
    {
        $domain = rcmail::get_instance()->config->get('username_domain');
        if (strpos($user, '@') === false && is_string($domain) && $domain !== '') {
            $user .= '@' . $domain;
        }
        return rcube_utils::idn_to_ascii(mb_strtolower($user));
    }
}

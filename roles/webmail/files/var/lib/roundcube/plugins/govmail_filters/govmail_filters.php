<?php
/**
 * govmail_filters: the webmail's filters, vacation reply, forwarding and junk buttons (issue 12).
 *
 * 1. Forwarding only inside government (REQUIREMENTS C5). The stock `managesieve` plugin saves a
 *    Sieve `redirect` from three forms: the filter form (action "redirect"/"redirect_copy",
 *    POST `_action_type[i]`/`_action_target[i]`, action plugin.managesieve-save, framed HTML),
 *    the vacation form and the forwarding form (POST `vacation_action`/`forward_action` =
 *    redirect|copy with `action_target`, AJAX plugin.managesieve-vacation|-forward). The plugin
 *    has no save hook and its `managesieve_domains` only lists whole domains, so this plugin
 *    reads those fields on Roundcube's `startup` hook, before the action runs, and refuses a
 *    target outside the own domain and the allowed suffixes with a message naming the address
 *    and the rule: the vacation and forwarding forms get the message and nothing is saved
 *    (the AJAX answer ends here); the filter form gets the message and the refused target is
 *    emptied, so the managesieve plugin's own check ("cannot be empty") stops the save and
 *    shows the form again. The raw Sieve editor and new filter sets (from a file) are turned
 *    off in the configuration, so no other form can upload a redirect. The server refuses
 *    the same targets anyway (Postfix's forwarding listener, roles/postfix).
 *    Configuration (roles/webmail, from the shared facts): `govmail_filters_domain` (string,
 *    govmail_domain), `govmail_filters_forward_suffixes` (list of ".suffix" strings,
 *    govmail_forward_allowed_suffixes). The rule is the forwarding listener's: the domain
 *    equals the own domain, or ends in a suffix with at least one character before it; case
 *    does not matter.
 * 2. Vietnamese texts the Debian plugins lack (notes/debian13.md §1): `l10n/<plugin>/<lang>.inc`
 *    holds only the labels the stock localization of `managesieve` and `markasjunk` does not
 *    have in that language (the plugins fall back to English for them). Roundcube keeps the
 *    first text added under a name (rcube::load_language), so this plugin must be listed BEFORE
 *    `managesieve` and `markasjunk` in $config['plugins']; the stock translations of every
 *    other label stay.
 */
class govmail_filters extends rcube_plugin
{
    public $task = 'mail|settings';

    /** the stock plugins whose missing texts l10n/<plugin>/ supplies */
    const COMPLETED = ['managesieve', 'markasjunk'];
    /** the index of the one target of the vacation and forwarding forms */
    const SINGLE = 'single';

    function init()
    {
        $this->add_texts('localization/');
        $rcmail = rcmail::get_instance();
        foreach (self::COMPLETED as $plugin) {
            $texts = $rcmail->read_localization(__DIR__ . "/l10n/$plugin");
            $add = [];
            foreach ($texts as $key => $value) {
                $add["$plugin.$key"] = $value;
            }
            // load_language() keeps the first text added under a name: before the plugin's own
            $rcmail->load_language($_SESSION['language'] ?? null, $add);
        }
        $this->add_hook('startup', [$this, 'startup']);
    }

    /**
     * Hook `startup`: args task, action. On a POST of the managesieve plugin's forms, refuses a
     * redirect target the policy does not allow (see the class comment); returns args unchanged.
     */
    function startup($args)
    {
        $action = (string) $args['action'];
        if (empty($_POST) || strpos($action, 'plugin.managesieve') !== 0) {
            return $args;
        }
        $rcmail = rcmail::get_instance();
        foreach ($this->posted_targets($action) as $index => $target) {
            if ($target === '' || $this->allowed($target)) {
                continue;
            }
            $rcmail->output->show_message('govmail_filters.forwardrefused', 'error', [
                'address' => $target,
                'allowed' => $this->allowed_text(),
            ]);
            if ($index === self::SINGLE) {
                $rcmail->output->send();  // vacation/forwarding form (AJAX): nothing saved
            }
            $_POST['_action_target'][$index] = '';  // filter form: the plugin's own check refuses
        }
        return $args;
    }

    /**
     * Redirect targets of a posted managesieve form: [index => address], index self::SINGLE for
     * the vacation and forwarding forms (one target), the action's index for the filter form.
     */
    private function posted_targets(string $action): array
    {
        $domains = (array) rcmail::get_instance()->config->get('managesieve_domains');
        if ($action == 'plugin.managesieve-vacation' || $action == 'plugin.managesieve-forward') {
            $kind = $action == 'plugin.managesieve-vacation' ? 'vacation_action' : 'forward_action';
            $type = rcube_utils::get_input_string($kind, rcube_utils::INPUT_POST);
            if ($type != 'redirect' && $type != 'copy') {
                return [];
            }
            $target = trim(rcube_utils::get_input_string('action_target', rcube_utils::INPUT_POST, true));
            $domain = rcube_utils::get_input_string('action_domain', rcube_utils::INPUT_POST);
            return [self::SINGLE => $domain !== '' && $target !== '' ? "$target@$domain" : $target];
        }
        if ($action != 'plugin.managesieve-save') {
            return [];
        }
        $types = (array) rcube_utils::get_input_value('_action_type', rcube_utils::INPUT_POST);
        $targets = (array) rcube_utils::get_input_value('_action_target', rcube_utils::INPUT_POST, true);
        $target_domains = (array) rcube_utils::get_input_value('_action_target_domain', rcube_utils::INPUT_POST);
        $found = [];
        foreach ($types as $index => $type) {
            if ($type != 'redirect' && $type != 'redirect_copy') {
                continue;
            }
            $target = trim((string) ($targets[$index] ?? ''));
            // the managesieve plugin appends a domain of its list (managesieve_domains) the same way
            if (!empty($domains) && $target !== '') {
                $domain = $target_domains[$index] ?? '';
                $target .= '@' . (in_array($domain, $domains) ? $domain : $domains[0]);
            }
            $found[$index] = $target;
        }
        return $found;
    }

    /** Whether automatic forwarding to this address is allowed (C5; the forwarding listener's rule). */
    private function allowed(string $address): bool
    {
        $config = rcmail::get_instance()->config;
        $at = strrpos($address, '@');
        if ($at === false) {
            return false;
        }
        $domain = mb_strtolower(substr($address, $at + 1));
        if ($domain === mb_strtolower((string) $config->get('govmail_filters_domain'))) {
            return true;
        }
        foreach ((array) $config->get('govmail_filters_forward_suffixes') as $suffix) {
            $suffix = mb_strtolower($suffix);
            if (strlen($domain) > strlen($suffix) && substr($domain, -strlen($suffix)) === $suffix) {
                return true;
            }
        }
        return false;
    }

    /** The allowed destinations as the message names them: "quangtri.gov.vn, *.gov.vn". */
    private function allowed_text(): string
    {
        $config = rcmail::get_instance()->config;
        $names = [(string) $config->get('govmail_filters_domain')];
        foreach ((array) $config->get('govmail_filters_forward_suffixes') as $suffix) {
            $names[] = '*' . $suffix;
        }
        return implode(', ', $names);
    }
}
